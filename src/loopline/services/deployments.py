"""The deployment service's interface: named endpoints and their versioned traffic policies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from loopline.core.entities import Principal
from loopline.core.registry import Deployment, DeploymentRevision, ModelVersion
from loopline.core.traffic import TrafficPolicy

if TYPE_CHECKING:
    from loopline.predictions.reports import DeploymentReport
    from loopline.predictions.series import TrafficSeries


class Deployments(Protocol):
    """Deployments whose traffic policies are stored, versioned and audited, acting as `principal`."""

    principal: Principal

    def resolve(self, policy: TrafficPolicy) -> dict[str, ModelVersion]:
        """The version each arm of `policy` serves now (aliases resolved); every one READY."""

    def create(
        self, name: str, policy: TrafficPolicy, reason: str = "", extra_fields: str = "refuse"
    ) -> Deployment:
        """A new deployment serving `policy`; request fields its model does not take are
        refused (422) or, with `extra_fields="ignore"`, dropped, whatever the policy."""

    def set_extra_fields(self, name: str, extra_fields: str, reason: str = "") -> Deployment:
        """Refuse ("refuse") or drop ("ignore") request fields the model does not take."""

    def get(self, name: str) -> Deployment:
        """A deployment with its current policy."""

    def policy(self, name: str) -> TrafficPolicy:
        """A deployment's current traffic policy."""

    def list_all(self) -> list[Deployment]:
        """Every deployment the principal sees."""

    def set_traffic(
        self, name: str, policy: TrafficPolicy, reason: str = "", expected_revision: int | None = None
    ) -> Deployment:
        """Change the policy (refused if the current revision is not `expected_revision`);
        running servers pick it up within seconds."""

    def revisions(self, name: str) -> list[DeploymentRevision]:
        """Every policy the deployment has had, oldest first."""

    def rollback(self, name: str, reason: str = "") -> Deployment:
        """Go back to the policy before the current one (as a new revision, on the record)."""

    def delete(self, name: str) -> None:
        """Remove a deployment; its prediction log stays."""

    def report(self, name: str, since_ms: int | None = None) -> DeploymentReport:
        """Its arms compared on its prediction log since `since_ms` (all of it by default):
        errors, latency and accuracy with confidence intervals, significance, sample ratio."""

    def traffic(self, name: str, since_ms: int | None = None, buckets: int = 120) -> TrafficSeries:
        """Its traffic over time since `since_ms` (all of its log by default): per time bucket,
        arm and version, requests answered and refused and latency p50, p95 and p99."""
