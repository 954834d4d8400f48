"""Role checks that every service runs before it acts, so every interface enforces them.

Deny by default: a principal with no role on a project is told it does not exist. The
local owner (embedded mode) and administrators hold every role.
"""

from __future__ import annotations

from loopline.core.access import Role
from loopline.core.entities import Principal
from loopline.core.errors import NotFound, PermissionDenied
from loopline.store import MetadataStore

REGISTRY_PROJECT = "default"
"""The project that models, deployments, datasets, monitors and pipelines belong to."""


def check_role(who: str, project: str, held: Role | None, needed: Role) -> None:
    """Refuse unless `held` is at least `needed`; without a role, the project does not exist."""
    if held is None:
        raise NotFound(f"project {project!r} does not exist")
    if not held.allows(needed):
        raise PermissionDenied(f"{who} is {held.value} on project {project!r}; this needs {needed.value}")


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

    def registry(self, needed: Role) -> None:
        """Models, deployments, datasets, monitors and pipelines: the registry project's role."""
        self.require(REGISTRY_PROJECT, needed)

    def visible(self, project: str) -> bool:
        return self.principal.is_owner or self._store.access.role(project, self.principal.name) is not None

    def visible_projects(self) -> set[str] | None:
        """The projects the principal may see; None when it sees all of them."""
        if self.principal.is_owner:
            return None
        return set(self._store.access.roles_of(self.principal.name))
