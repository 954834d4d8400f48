"""Deployments: named endpoints whose traffic policy is stored, versioned and audited.

A policy may declare online features (`FeatureDeclaration`); each ref must resolve to a
registered view and feature when the policy is set, or the change is refused naming it.
Its prediction-log treatments (`LogPolicy`) must name inputs of its models (or join keys of
its features) when their signatures list them, and hashing needs the hash key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopline.artifacts.tables import TableArea
from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.entities import DEFAULT_PROJECT
from loopline.core.errors import Conflict, InvalidInput, NotFound
from loopline.core.names import model_name
from loopline.core.personal_data import LogPolicy
from loopline.core.registry import EXTRA_FIELDS, Deployment, DeploymentRevision, ModelVersion
from loopline.core.traffic import FeatureDeclaration, TrafficPolicy, serving_versions
from loopline.core.uris import parse_model_uri
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import OPERATIONS_PROJECT, Authorizer
from loopline.lineage import LineageService
from loopline.services import Registry
from loopline.serving.features import resolve_features
from loopline.serving.log_policy import check_log_policy
from loopline.store import MetadataStore, atomic

if TYPE_CHECKING:
    from loopline.predictions.reports import DeploymentReport
    from loopline.predictions.series import TrafficSeries


def _check_extra_fields(value: str) -> None:
    if value not in EXTRA_FIELDS:
        raise InvalidInput(f"extra fields are {' or '.join(EXTRA_FIELDS)}, not {value!r}")


class DeploymentService:
    def __init__(
        self,
        store: MetadataStore,
        tables: TableArea,
        *,
        registry: Registry,
        authorizer: Authorizer,
        audit: AuditTrail,
        lineage: LineageService,
        hash_key: bytes | None = None,
    ) -> None:
        self._store = store
        self._hash_key = hash_key  # whether prediction-log hashing can run here (LOOPLINE_PII_HASH_KEY)
        self._tables = tables
        self.principal = authorizer.principal
        self._registry = registry
        self._access = authorizer
        self._audit = audit
        self._lineage = lineage

    def resolve(self, policy: TrafficPolicy) -> dict[str, ModelVersion]:
        """The version each arm serves now (aliases resolved); every one must be READY."""
        return serving_versions(policy, self._registry.resolve)

    def _checked(self, policy: TrafficPolicy) -> TrafficPolicy:
        """`policy` as stored: its arms servable, its features resolving (NotFound names an
        unknown view or feature), its log treatments naming known columns, empty declarations
        dropped."""
        served = self.resolve(policy)
        declared = policy.declared_features
        join_keys: set[str] = set()
        if declared is not None:
            self._access.require(DEFAULT_PROJECT, Role.VIEWER)  # the feature registry's rule
            for found in resolve_features(declared, self._store.features.view):
                join_keys.update(found.view.join_keys)
        treated = policy.log_treatments
        if treated is not None:
            check_log_policy(treated, served, join_keys, self._hash_key)
        return policy.with_features(declared).with_log(treated)

    def _record_lineage(self, name: str, policy: TrafficPolicy) -> None:
        for arm, version in self.resolve(policy).items():
            if version.digest is not None:
                self._lineage.link(
                    ("model_version", version.digest), "deployed_in", ("deployment", name), arm
                )

    @atomic
    def create(
        self, name: str, policy: TrafficPolicy, reason: str = "", extra_fields: str = "refuse"
    ) -> Deployment:
        """A new deployment serving `policy` (with the online features it declares, each ref
        resolving now); fields its models do not take are refused or ignored."""
        name = model_name(name)
        self._access.operations(Role.MAINTAINER)
        _check_extra_fields(extra_fields)
        policy = self._checked(policy)
        created = self._store.deployments.create(
            name, policy.to_dict(), self.principal.name, now_ms(), reason, extra_fields
        )
        self._record_lineage(name, policy)
        self._audit.record(
            "deployment.create", f"deployment:{name}", after=policy.to_dict(), reason=reason,
            extra_fields=extra_fields,
        )  # fmt: skip
        return created

    @atomic
    def set_extra_fields(self, name: str, extra_fields: str, reason: str = "") -> Deployment:
        """Whether requests with fields the model does not take are refused or have them
        ignored; running servers pick it up within seconds."""
        name = model_name(name)
        self._access.operations(Role.MAINTAINER)
        _check_extra_fields(extra_fields)
        before = self.get(name).extra_fields
        changed = self._store.deployments.set_extra_fields(name, extra_fields, now_ms())
        self._audit.record(
            "deployment.extra_fields", f"deployment:{name}", before=before, after=extra_fields, reason=reason
        )
        return changed

    def get(self, name: str) -> Deployment:
        self._access.operations(Role.VIEWER)
        return self._store.deployments.get(model_name(name))

    def policy(self, name: str) -> TrafficPolicy:
        return TrafficPolicy.from_dict(self.get(name).policy)

    def list_all(self) -> list[Deployment]:
        if not self._access.visible(OPERATIONS_PROJECT):
            return []
        return self._store.deployments.list_all()

    @atomic
    def set_traffic(
        self, name: str, policy: TrafficPolicy, reason: str = "", expected_revision: int | None = None
    ) -> Deployment:
        """Change the policy; running servers pick it up within seconds. A policy that
        declares no features (`features` None) keeps the current declaration, so a rollout that
        only moves traffic never drops the features its models need; an empty declaration
        (`FeatureDeclaration(())`) removes them. The log treatments (`log`) are kept the same
        way: a rollout never starts logging a column raw; `LogPolicy()` removes them."""
        name = model_name(name)
        self._access.operations(Role.MAINTAINER)
        before = self.get(name).policy
        if policy.features is None:
            policy = policy.with_features(TrafficPolicy.from_dict(before).features)
        if policy.log is None:
            policy = policy.with_log(TrafficPolicy.from_dict(before).log)
        policy = self._checked(policy)
        changed = self._store.deployments.set_policy(
            name, policy.to_dict(), self.principal.name, now_ms(), reason, expected_revision
        )
        self._record_lineage(name, policy)
        self._audit.record(
            "deployment.traffic", f"deployment:{name}", before=before, after=policy.to_dict(), reason=reason,
            revision=changed.revision,
        )  # fmt: skip
        return changed

    def revisions(self, name: str) -> list[DeploymentRevision]:
        self._access.operations(Role.VIEWER)
        return self._store.deployments.revisions(model_name(name))

    def rollback(self, name: str, reason: str = "") -> Deployment:
        """Go back to the policy before the current one (as a new revision, on the record)."""
        self._access.operations(Role.MAINTAINER)
        history = self.revisions(name)
        if len(history) < 2:
            raise Conflict(f"deployment {name!r} has no earlier policy to roll back to")
        current, previous = history[-1], history[-2]
        earlier = TrafficPolicy.from_dict(previous.policy)
        if earlier.features is None:  # it had none: back to none, not the current ones kept
            earlier = earlier.with_features(FeatureDeclaration(()))
        if earlier.log is None:
            earlier = earlier.with_log(LogPolicy())
        return self.set_traffic(
            name,
            earlier,
            reason or f"rollback from revision {current.revision} to {previous.revision}",
            expected_revision=current.revision,
        )

    @atomic
    def delete(self, name: str) -> None:
        self._access.operations(Role.MAINTAINER)
        self._store.deployments.delete(model_name(name), now_ms())
        self._audit.record("deployment.delete", f"deployment:{model_name(name)}")

    def report(self, name: str, since_ms: int | None = None) -> DeploymentReport:
        """Its arms compared on its prediction log since `since_ms` (all of it by default)."""
        from loopline.predictions.reports import deployment_report

        deployment = self.get(name)
        return deployment_report(
            self._tables, deployment.name, TrafficPolicy.from_dict(deployment.policy), since_ms
        )

    def traffic(self, name: str, since_ms: int | None = None, buckets: int = 120) -> TrafficSeries:
        """Its traffic over time since `since_ms`, in at most `buckets` buckets per arm and version."""
        from loopline.predictions.series import traffic_series

        return traffic_series(self._tables, self.get(name).name, since_ms, buckets)

    def for_model(self, uri: str, name: str | None = None, extra_fields: str | None = None) -> Deployment:
        """The deployment `loopline serve URI` serves: named after the model unless `name`
        is given, created with a single-version policy if it does not exist (and its rule
        for extra fields set, when `extra_fields` is given)."""
        ref = parse_model_uri(uri)
        deployment_name = model_name(name or ref.name)
        wanted = TrafficPolicy.single(str(ref))
        try:
            existing = self.get(deployment_name)
        except NotFound:
            return self.create(
                deployment_name,
                wanted,
                reason=f"created to serve {ref}",
                extra_fields=extra_fields or "refuse",
            )
        # its features and log treatments are not the model's: with them it still serves it
        if TrafficPolicy.from_dict(existing.policy).with_features(None).with_log(None) != wanted:
            raise InvalidInput(
                f"deployment {deployment_name!r} exists with another policy "
                f"({TrafficPolicy.from_dict(existing.policy).describe()}); serve it with --deployment "
                f"{deployment_name}, or pick another --name"
            )
        if extra_fields is not None and extra_fields != existing.extra_fields:
            return self.set_extra_fields(deployment_name, extra_fields, reason=f"set to serve {ref}")
        return existing
