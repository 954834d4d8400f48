"""Role checks that every service runs before it acts, so every interface enforces them.

Deny by default: a principal with no role on a project is told it does not exist. The
local owner (embedded mode) and administrators hold every role.
"""

from __future__ import annotations

from loopline.core.access import Role, check_role
from loopline.core.entities import DEFAULT_PROJECT, Principal
from loopline.core.errors import NotFound, PermissionDenied
from loopline.core.names import model_name
from loopline.store import MetadataStore

OPERATIONS_PROJECT = DEFAULT_PROJECT
"""The project that deployments, datasets, monitors, pipelines and retraining loops belong to.
Experiments, runs and registered models each belong to a project of their own."""


class Authorizer:
    def __init__(self, store: MetadataStore, principal: Principal) -> None:
        self._store = store
        self.principal = principal

    def require(self, project: str, needed: Role) -> None:
        if not self.principal.is_owner:
            check_role(
                self.principal.name, project, self._store.access.role(project, self.principal.name), needed
            )

    def require_run(self, run_id: str, needed: Role) -> None:
        if not self.principal.is_owner:
            try:
                self.require(self._store.runs.project_of_run(run_id), needed)
            except NotFound:
                raise NotFound(f"run {run_id!r} does not exist") from None

    def require_experiment(self, experiment_id: int, needed: Role) -> None:
        if not self.principal.is_owner:
            project = self._store.experiments.get_experiment(experiment_id).project
            try:
                self.require(project, needed)
            except NotFound:
                raise NotFound(f"experiment {experiment_id} does not exist") from None

    def operations(self, needed: Role) -> None:
        """Deployments, datasets, monitors, pipelines and loops: the role on their project."""
        self.require(OPERATIONS_PROJECT, needed)

    def model(self, name: str, needed: Role) -> None:
        """The role on the model's project; a model in a project without one does not exist."""
        if not self.principal.is_owner:
            try:
                self.require(self._store.registry.project_of_model(model_name(name)), needed)
            except NotFound:
                raise NotFound(f"registered model {name!r} does not exist") from None

    def require_somewhere(self, needed: Role) -> None:
        """At least `needed` on some project (to stage files before naming their model)."""
        if not self.principal.is_owner:
            held = self._store.access.roles_of(self.principal.name).values()
            if not any(role.allows(needed) for role in held):
                raise PermissionDenied(f"{self.principal.name} is not {needed.value} on any project")

    def visible(self, project: str) -> bool:
        return self.principal.is_owner or self._store.access.role(project, self.principal.name) is not None

    def visible_projects(self) -> set[str] | None:
        """The projects the principal may see; None when it sees all of them."""
        if self.principal.is_owner:
            return None
        return set(self._store.access.roles_of(self.principal.name))
