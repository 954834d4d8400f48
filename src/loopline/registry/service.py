"""The model registry: registered models, versions that move PENDING -> READY, aliases
whose every move is recorded, and loading a version back with its files verified."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.artifacts import BlobStore, check_artifact_name, destination
from loopline.core.access import AliasRequest, Role
from loopline.core.clock import now_ms
from loopline.core.entities import DEFAULT_PROJECT
from loopline.core.errors import (
    AlreadyExists,
    ApprovalRequired,
    ArtifactCorrupted,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from loopline.core.ids import is_id
from loopline.core.names import alias_name, display_model_name, model_name
from loopline.core.registry import (
    TRUSTED_CODE_TAG,
    TRUSTED_TYPES_TAG,
    AliasEvent,
    ModelVersion,
    RegisteredModel,
    loadable,
    version_trusted_types,
)
from loopline.core.uris import ModelRef, parse_model_uri
from loopline.core.validation import check_key, check_tag_value
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.lineage import LineageService
from loopline.store import MetadataStore, atomic

if TYPE_CHECKING:  # models (pandas, the flavors) are imported where a model is read or loaded
    from loopline.models import LoadedModel, ModelMetadata

ABANDONED_AFTER_S = 6 * 3600.0  # a registration still PENDING this long has died


_TYPE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def _tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    for reserved in (TRUSTED_TYPES_TAG, TRUSTED_CODE_TAG):
        if reserved in (tags or {}):
            raise InvalidInput(f"tag {reserved!r} is set by `models trust` (a maintainer), not by hand")
    return {check_key("tag key", k): check_tag_value(k, v) for k, v in (tags or {}).items()}


class RegistryService:
    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        *,
        authorizer: Authorizer,
        audit: AuditTrail,
        lineage: LineageService,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self.principal = authorizer.principal
        self._access = authorizer
        self.audit = audit
        self.lineage = lineage

    def require_model_role(self, name: str, needed: Role) -> None:
        """Refuse unless the principal holds `needed` on the project of model `name`."""
        self._access.model(name, needed)

    def require_role_somewhere(self, needed: Role) -> None:
        """Refuse unless the principal holds `needed` on some project."""
        self._access.require_somewhere(needed)

    # registered models ---------------------------------------------------------------

    @atomic
    def create_model(
        self,
        name: str,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> RegisteredModel:
        """A new model in `project`, whose roles then govern it. Names are unique across
        projects, so that a model URI names one model wherever it is used."""
        display = display_model_name(name)
        self._access.require(project, Role.EDITOR)
        checked_tags = _tags(tags)
        created = self._store.registry.create_model(
            display.lower(), display, project, description, self.principal.name, now_ms()
        )
        if checked_tags:
            self._store.registry.update_model(created.name, None, checked_tags)
            created = self.get_model(created.name)
        after = {"project": project, "description": description, "tags": checked_tags}
        self.audit.record("model.create", f"models:/{created.name}", after=after)
        return created

    def get_or_create_model(self, name: str, project: str = DEFAULT_PROJECT) -> RegisteredModel:
        """Model `name`, created in `project` if it does not exist yet."""
        with contextlib.suppress(NotFound):
            return self.get_model(name)
        try:
            return self.create_model(name, project=project)
        except AlreadyExists:  # registered by a concurrent caller in between
            return self.get_model(name)

    def get_model(self, name: str) -> RegisteredModel:
        self._access.model(name, Role.VIEWER)
        return self._store.registry.get_model(model_name(name))

    def list_models(self) -> list[RegisteredModel]:
        """The models of every project the principal holds a role on."""
        return self._store.registry.list_models(self._access.visible_projects())

    @atomic
    def update_model(
        self, name: str, description: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> RegisteredModel:
        self._access.model(name, Role.EDITOR)
        before = self.get_model(name)
        checked = _tags(tags)
        self._store.registry.update_model(before.name, description, checked)
        self.audit.record(
            "model.update", f"models:/{before.name}", before={"description": before.description},
            after={"description": description, "tags": checked},
        )  # fmt: skip
        return self.get_model(name)

    @atomic
    def delete_model(self, name: str) -> None:
        """Hide a model and its versions; refused while an alias points into it."""
        self._access.model(name, Role.MAINTAINER)
        self._store.registry.delete_model(model_name(name), now_ms())
        self.audit.record("model.delete", f"models:/{model_name(name)}")

    # versions --------------------------------------------------------------------------

    def register(
        self,
        name: str,
        directory: Path,
        *,
        run_id: str | None = None,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        project: str | None = None,
    ) -> ModelVersion:
        """Register the model saved in `directory` as the next version of `name`; a new
        model is created in `project`, by default the project of `run_id` (or `default`).

        The version is PENDING while its files are stored and READY only once every one
        is stored under its verified hash; if storing fails it becomes FAILED, and if the
        process dies it stays PENDING. Neither can be loaded."""
        if run_id is not None:
            self._access.require_run(run_id, Role.EDITOR)
        from loopline.models.package import read_metadata, verify_files

        metadata = read_metadata(directory)
        try:
            verify_files(directory, metadata)
        except ArtifactCorrupted as exc:  # what the caller sent disagrees with itself
            raise InvalidInput(f"the model in {directory.name!r} cannot be registered: {exc}") from None
        if project is None:
            project = DEFAULT_PROJECT if run_id is None else self._store.runs.project_of_run(run_id)
        model = self.get_or_create_model(name, project)
        self._access.model(model.name, Role.EDITOR)
        checked_tags = _tags(tags)
        run_metrics = self._store.runs.get_run(run_id).metrics if run_id is not None else {}
        version = self._store.registry.begin_version(
            model.name,
            run_id=run_id,
            flavor=metadata.flavor,
            task=metadata.task,
            description=description,
            model_json=metadata.to_dict(),
            size=metadata.size,
            created_by=self.principal.name,
            created_at=now_ms(),
            tags=checked_tags,
        )
        try:
            files = self._store_files(directory, metadata)
            return self._store.atomically(
                lambda: self._finish(model.name, version, files, run_id, run_metrics)
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self._store.registry.fail_version(model.name, version)
            raise

    def register_run_files(
        self,
        name: str,
        run_id: str,
        path: str,
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register as the next version of `name` the model that run `run_id` logged as its
        artifacts under `path`: saved by loopline, or in MLflow's format (an `MLmodel` file,
        described by `loopline.models.mlflow_format`). Its blobs are stored once."""
        from loopline.models.mlflow_format import describe_mlflow_model
        from loopline.models.package import METADATA_FILE

        self._access.require_run(run_id, Role.EDITOR)
        prefix = check_artifact_name(path.strip("/")) + "/"
        entries = self._store.artifacts.list_artifacts(run_id, prefix)
        if not entries:
            raise NotFound(f"run {run_id} has no artifacts under {path!r}")
        with tempfile.TemporaryDirectory(prefix="loopline-register-") as tmp:
            folder = Path(tmp)
            for entry in entries:
                self._blobs.download(entry.digest, entry.name, destination(folder, entry.name[len(prefix) :]))
            if not (folder / METADATA_FILE).is_file():
                describe_mlflow_model(folder)
            return self.register(name, folder, run_id=run_id, description=description, tags=tags)

    def _finish(
        self, model: str, version: int, files: dict[str, tuple[str, int]], run_id: str | None,
        run_metrics: Mapping[str, float],
    ) -> ModelVersion:  # fmt: skip
        """The version READY, its lineage and its audit entry, in the caller's transaction."""
        from loopline.models.package import METADATA_FILE

        digest = files[METADATA_FILE][0]
        self._store.registry.finish_version(model, version, files, digest, now_ms(), run_metrics)
        if run_id is not None:
            self.lineage.link(("run", run_id), "produced", ("model_version", digest))
        registered = self.get_version(model, version)
        self.audit.record("model.register", registered.uri, after={"digest": digest, "run_id": run_id})
        return registered

    def _store_files(self, directory: Path, metadata: ModelMetadata) -> dict[str, tuple[str, int]]:
        from loopline.models.package import METADATA_FILE

        stored = {}
        for path in [*metadata.files, METADATA_FILE]:
            blob = self._blobs.put_file(directory / path)
            if path in metadata.files and blob.digest != metadata.files[path].sha256:
                raise ArtifactCorrupted(f"model file {path!r} changed while it was being stored")
            if not self._blobs.exists(blob.digest):
                raise ArtifactCorrupted(f"model file {path!r} is not in the artifact store after storing it")
            stored[path] = (blob.digest, blob.size)
        return stored

    def get_version(self, name: str, version: int) -> ModelVersion:
        self._access.model(name, Role.VIEWER)
        return self._store.registry.get_version(model_name(name), version)

    def list_versions(self, name: str) -> list[ModelVersion]:
        self._access.model(name, Role.VIEWER)
        return self._store.registry.list_versions(model_name(name))

    @atomic
    def fail_abandoned_versions(self, older_than_s: float = ABANDONED_AFTER_S) -> list[tuple[str, int]]:
        """Versions whose registration died (still PENDING after `older_than_s`) become FAILED,
        each on the audit trail; a worker calls this on its rounds. Administrators only."""
        if not self.principal.is_owner:
            raise PermissionDenied("only an administrator may clean up after dead registrations")
        failed = self._store.registry.fail_stale_versions(now_ms() - int(older_than_s * 1000))
        for model, version in failed:
            self.audit.record(
                "model.fail_version", f"models:/{model}/{version}", reason="abandoned while PENDING"
            )
        return failed

    @atomic
    def update_version(
        self, name: str, version: int, description: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> ModelVersion:
        self._access.model(name, Role.EDITOR)
        checked = _tags(tags)
        self._store.registry.update_version(model_name(name), version, description, checked)
        after = {"description": description, "tags": checked}
        self.audit.record("model.update_version", f"models:/{model_name(name)}/{version}", after=after)
        return self.get_version(name, version)

    @atomic
    def trust_types(self, name: str, version: int, types: Sequence[str]) -> ModelVersion:
        """Vouch for the types a version needs loaded beyond the reviewed list (a custom
        transformer, say), so that serving, batch scoring and the loop load it. A maintainer's
        decision, on the audit trail; an empty list withdraws it."""
        self._access.model(name, Role.MAINTAINER)
        if bad := [t for t in types if not _TYPE_NAME.fullmatch(t)]:
            raise InvalidInput(f"{bad[0]!r} is not a type's dotted name (module.Class)")
        current = self.get_version(name, version)
        chosen = sorted(set(types))
        self._store.registry.update_version(
            current.model, version, None, {TRUSTED_TYPES_TAG: ",".join(chosen)}
        )
        target = f"models:/{current.model}/{version}"
        self.audit.record("model.trust", target, before=list(version_trusted_types(current)), after=chosen)
        return self.get_version(name, version)

    @atomic
    def trust_code(self, name: str, version: int, trusted: bool = True) -> ModelVersion:
        """Trust a version to run the code its files carry (a pickle, a model in MLflow's
        format), so that serving, batch scoring and the loop load it. A maintainer's decision,
        on the audit trail; `trusted=False` withdraws it."""
        self._access.model(name, Role.MAINTAINER)
        current = self.get_version(name, version)
        before = current.tags.get(TRUSTED_CODE_TAG) == "true"
        value = "true" if trusted else ""
        self._store.registry.update_version(current.model, version, None, {TRUSTED_CODE_TAG: value})
        self.audit.record("model.trust_code", current.uri, before=before, after=trusted)
        return self.get_version(name, version)

    @atomic
    def delete_version(self, name: str, version: int) -> None:
        self._access.model(name, Role.MAINTAINER)
        self._store.registry.delete_version(model_name(name), version, now_ms())
        self.audit.record("model.delete_version", f"models:/{model_name(name)}/{version}")

    def resolve(self, uri: str | ModelRef) -> ModelVersion:
        """The version a URI names: models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/latest,
        or runs:/RUN_ID/NAME, the version of model NAME that run logged (as MLflow's
        runs:/RUN_ID/model, any name names the model of a run that logged one)."""
        if isinstance(uri, str) and uri.strip().startswith("runs:/"):
            return self._logged_by_run(uri.strip())
        ref = parse_model_uri(uri) if isinstance(uri, str) else uri
        version = ref.version
        if ref.alias is not None:
            version = self.get_model(ref.name).aliases.get(ref.alias)
            if version is None:
                raise NotFound(f"model {ref.name!r} has no alias {ref.alias!r}")
        elif version is None:
            self._access.model(ref.name, Role.VIEWER)
            version = self._store.registry.latest_ready_version(ref.name)
            if version is None:
                raise NotFound(f"model {ref.name!r} has no READY version")
        return self.get_version(ref.name, version)

    def _logged_by_run(self, uri: str) -> ModelVersion:
        run_id, _, name = uri.removeprefix("runs:/").partition("/")
        if not is_id(run_id):
            raise InvalidInput(f"{uri!r} is not a run's model URI; use runs:/RUN_ID/NAME")
        self._access.require_run(run_id, Role.VIEWER)
        logged = self._store.registry.versions_of_run(run_id)
        models = sorted({model for model, _ in logged})
        chosen = model_name(name) if name and model_name(name) in models else None
        if chosen is None and len(models) == 1:
            chosen = models[0]
        if chosen is None:
            found = ", ".join(models) or "none"
            raise NotFound(
                f"run {run_id} logged no model {name!r} (it logged: {found}); use runs:/{run_id}/NAME"
            )
        return self.get_version(chosen, max(v for m, v in logged if m == chosen))

    def _loadable(self, uri: str | ModelRef) -> ModelVersion:
        return loadable(self.resolve(uri))

    def download(self, uri: str | ModelRef, target: Path) -> ModelVersion:
        """Write a READY version's files below `target`, each verified against its hash."""
        version = self._loadable(uri)
        for path, (digest, _) in sorted(version.files.items()):
            self._blobs.download(digest, f"{version.uri}/{path}", destination(target, path))
        return version

    def version_file(self, name: str, version: int, path: str) -> Path:
        """A local file holding one file of a READY version, its bytes verified."""
        loadable = self._loadable(ModelRef(model_name(name), version=version))
        if path not in loadable.files:
            raise NotFound(f"{loadable.uri} has no file {path!r}")
        return self._blobs.local_file(loadable.files[path][0], f"{loadable.uri}/{path}")

    def load(
        self,
        uri: str | ModelRef,
        *,
        trust: bool = False,
        trusted_types: Sequence[str] = (),
        module_factory: Any = None,
        onnx: bool = False,
    ) -> LoadedModel:
        """Load a model version for prediction. Every file is verified before it is read."""
        from loopline.models import load_version
        from loopline.models.flavors import LoadOptions

        options = LoadOptions(
            trust=trust, trusted_types=tuple(trusted_types), module_factory=module_factory, onnx=onnx
        )
        return load_version(lambda folder: self.download(uri, folder), options)

    # aliases ---------------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        forced: bool = False,
        report: dict[str, Any] | None = None,
    ) -> AliasEvent:
        """Point `alias` at `version`, recording who moved it, from where, and why. A
        protected alias does not move: the move becomes a request that a second person must
        approve (`ApprovalRequired` names it)."""
        self._access.model(name, Role.MAINTAINER)
        model = self.get_model(name)
        alias = alias_name(alias)
        target = self._loadable(ModelRef(model.name, version=version))
        if self._store.approvals.is_protected(model.name, alias):
            request = self._request(model, alias, target.version, reason)
            raise ApprovalRequired(
                f"@{alias} of {model.name} is protected: moving it to version {target.version} awaits "
                f"a second person's approval (request {request.id}; `loopline models approve {request.id}`)",
                request.id,
            )
        return self._move(model.name, alias, target.version, model.aliases.get(alias), reason, forced, report)

    @atomic
    def _request(self, model: RegisteredModel, alias: str, version: int, reason: str) -> AliasRequest:
        request = self._store.approvals.add_request(
            model.name, alias, version, self.principal.name, now_ms(), reason
        )
        self.audit.record(
            "alias.request", f"models:/{model.name}@{alias}", before=model.aliases.get(alias),
            after=version, reason=reason, request=request.id,
        )  # fmt: skip
        return request

    @atomic
    def _move(
        self,
        model: str,
        alias: str,
        version: int,
        previous: int | None,
        reason: str,
        forced: bool = False,
        report: dict[str, Any] | None = None,
    ) -> AliasEvent:
        event = AliasEvent(
            model=model,
            alias=alias,
            from_version=previous,
            to_version=version,
            actor=self.principal.name,
            at=now_ms(),
            reason=reason,
            forced=forced,
            report=report,
        )
        self._store.aliases.move_alias(event)
        self.audit.record(
            "alias.move",
            f"models:/{model}@{alias}",
            before=previous,
            after=version,
            reason=reason,
            forced=forced,
        )
        return event

    # protected aliases: four eyes ----------------------------------------------------------------

    @atomic
    def protect_alias(self, name: str, alias: str) -> None:
        self._access.model(name, Role.OWNER)
        model, alias = self.get_model(name).name, alias_name(alias)
        self._store.approvals.protect(model, alias)
        self.audit.record("alias.protect", f"models:/{model}@{alias}")

    @atomic
    def unprotect_alias(self, name: str, alias: str) -> None:
        self._access.model(name, Role.OWNER)
        model, alias = self.get_model(name).name, alias_name(alias)
        self._store.approvals.unprotect(model, alias)
        self.audit.record("alias.unprotect", f"models:/{model}@{alias}")

    def protected_aliases(self, name: str) -> list[str]:
        self._access.model(name, Role.VIEWER)
        return self._store.approvals.protected(model_name(name))

    def alias_requests(self, name: str | None = None, status: str | None = None) -> list[AliasRequest]:
        """Requests to move protected aliases: of model `name`, or of every model visible."""
        if name is not None:
            self._access.model(name, Role.VIEWER)
            return self._store.approvals.requests(model_name(name), status)
        found = self._store.approvals.requests(None, status)
        if self.principal.is_owner:
            return found
        visible = {model.name for model in self.list_models()}
        return [request for request in found if request.model in visible]

    @atomic
    def approve(self, request_id: int, reason: str = "") -> AliasEvent:
        """Approve a pending request (not one's own) and move the alias as it asked: refused
        if the version it asked for was deleted since (or never finished storing)."""
        request = self._decide(
            request_id, "approved", reason, lambda r: self._loadable(ModelRef(r.model, version=r.version))
        )
        model = self.get_model(request.model)
        why = f"approved by {self.principal.name} (request {request.id} of {request.requested_by})"
        why += f": {request.reason}" if request.reason else ""
        return self._move(
            request.model, request.alias, request.version, model.aliases.get(request.alias), why
        )

    def reject(self, request_id: int, reason: str = "") -> AliasRequest:
        self._decide(request_id, "rejected", reason)
        return self._store.approvals.request(request_id)

    @atomic
    def _decide(
        self, request_id: int, status: str, reason: str, check: Callable[[AliasRequest], object] | None = None
    ) -> AliasRequest:
        """Record the decision on a pending request, once `check` (if any) accepts it."""
        request = self._store.approvals.request(request_id)
        try:
            self._access.model(request.model, Role.MAINTAINER)
        except NotFound:
            raise NotFound(f"alias request {request_id} does not exist") from None
        if request.requested_by == self.principal.name:
            raise PermissionDenied(
                f"request {request_id} is {request.requested_by}'s own: a second person decides it"
            )
        if check is not None:
            check(request)
        if not self._store.approvals.decide(request_id, status, self.principal.name, now_ms(), reason):
            raise Conflict(
                f"request {request_id} was already {self._store.approvals.request(request_id).status}"
            )
        target = f"models:/{request.model}@{request.alias}"
        self.audit.record(f"alias.{status}", target, after=request.version, reason=reason, request=request_id)
        return request

    @atomic
    def remove_alias(self, name: str, alias: str, *, reason: str = "") -> AliasEvent:
        self._access.model(name, Role.MAINTAINER)
        model = self.get_model(name)
        alias = alias_name(alias)
        if alias not in model.aliases:
            raise NotFound(f"model {model.name!r} has no alias {alias!r}")
        if self._store.approvals.is_protected(model.name, alias):
            raise PermissionDenied(
                f"@{alias} of {model.name} is protected: its moves need a second person, and it is not "
                "removed on one person's say (an owner may unprotect it first, on the record)"
            )
        event = AliasEvent(
            model.name, alias, model.aliases[alias], None, self.principal.name, now_ms(), reason, False, None
        )
        self._store.aliases.move_alias(event)
        self.audit.record(
            "alias.remove", f"models:/{model.name}@{alias}", before=event.from_version, reason=reason
        )
        return event

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        self._access.model(name, Role.VIEWER)
        return self._store.aliases.alias_history(
            model_name(name), None if alias is None else alias_name(alias)
        )
