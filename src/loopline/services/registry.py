"""The model registry's interface: models, versions, aliases and their approvals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loopline.core.access import AliasRequest, Role
from loopline.core.entities import DEFAULT_PROJECT, Principal
from loopline.core.registry import AliasEvent, ModelVersion, RegisteredModel
from loopline.core.uris import ModelRef

if TYPE_CHECKING:
    from loopline.models import LoadedModel


class Registry(Protocol):
    """Registered models, versions that move PENDING -> READY, and aliases whose every move
    is recorded, acting as `principal`."""

    principal: Principal

    def require_model_role(self, name: str, needed: Role) -> None:
        """Refuse unless the principal holds `needed` on the project of model `name`."""

    def require_role_somewhere(self, needed: Role) -> None:
        """Refuse unless the principal holds `needed` on some project."""

    def create_model(
        self,
        name: str,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> RegisteredModel:
        """A new model in `project`; names are unique across projects."""

    def get_or_create_model(self, name: str, project: str = DEFAULT_PROJECT) -> RegisteredModel:
        """Model `name`, created in `project` if it does not exist yet."""

    def get_model(self, name: str) -> RegisteredModel:
        """A registered model with its aliases."""

    def list_models(self) -> list[RegisteredModel]:
        """The models of every project the principal holds a role on."""

    def update_model(
        self, name: str, description: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> RegisteredModel:
        """Change a model's description or tags."""

    def delete_model(self, name: str) -> None:
        """Hide a model and its versions; refused while an alias points into it."""

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
        """Register the model saved in `directory` as the next version of `name`."""

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version of a model."""

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""

    def update_version(
        self, name: str, version: int, description: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> ModelVersion:
        """Change a version's description or tags."""

    def trust_types(self, name: str, version: int, types: Sequence[str]) -> ModelVersion:
        """Vouch for the types a version needs loaded beyond the reviewed list (a maintainer's
        decision, on the audit trail); every loader of the version then trusts them."""

    def trust_code(self, name: str, version: int, trusted: bool = True) -> ModelVersion:
        """Trust a version to run the code its files carry (a pickle, a model in MLflow's
        format) for every loader (a maintainer's decision, on the audit trail)."""

    def delete_version(self, name: str, version: int) -> None:
        """Hide a version; refused while an alias points at it."""

    def resolve(self, uri: str | ModelRef) -> ModelVersion:
        """The version a `models:/` URI names now (aliases followed)."""

    def download(self, uri: str | ModelRef, target: Path) -> ModelVersion:
        """Write a READY version's files below `target`, each verified against its hash."""

    def version_file(self, name: str, version: int, path: str) -> Path:
        """A local file holding one file of a READY version, its bytes verified."""

    def load(
        self,
        uri: str | ModelRef,
        *,
        trust: bool = False,
        trusted_types: Sequence[str] = (),
        module_factory: Any = None,
        onnx: bool = False,
    ) -> LoadedModel:
        """Load a model version for prediction, here. Every file is verified before it is read."""

    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> AliasEvent:
        """Point `alias` at `version` by hand, on the record; a protected alias raises
        ApprovalRequired. Promotion (`Promotion.promote`) moves it with its gates' report."""

    def remove_alias(self, name: str, alias: str, *, reason: str = "") -> AliasEvent:
        """Remove an alias, on the record."""

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every move of the model's aliases (or of one), oldest first."""

    def protect_alias(self, name: str, alias: str) -> None:
        """From now on, every move of `alias` needs a second person's approval."""

    def unprotect_alias(self, name: str, alias: str) -> None:
        """Moves of `alias` no longer need approval."""

    def protected_aliases(self, name: str) -> list[str]:
        """The aliases of `name` whose moves need a second person's approval."""

    def alias_requests(self, name: str | None = None, status: str | None = None) -> list[AliasRequest]:
        """Requests to move protected aliases, of one model or all, by status."""

    def approve(self, request_id: int, reason: str = "") -> AliasEvent:
        """Approve another person's request: the alias moves."""

    def reject(self, request_id: int, reason: str = "") -> AliasRequest:
        """Reject a request: the alias stays."""
