"""Entities of access control: users, their API tokens, and roles per project."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from loopline.core.errors import NotFound, PermissionDenied


class Role(enum.StrEnum):
    VIEWER = "viewer"  # read
    EDITOR = "editor"  # log runs, register models and datasets
    MAINTAINER = "maintainer"  # promote, change traffic, run pipelines
    OWNER = "owner"  # manage members

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    is_admin: bool
    created_at: int
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as stored: its sha256 and a short prefix to recognise it, never the secret."""

    id: int
    user: str
    name: str
    prefix: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class AliasRequest:
    """A move of a protected alias, waiting for a second person's approval."""

    id: int
    model: str
    alias: str
    version: int
    requested_by: str
    requested_at: int
    reason: str
    status: str  # pending | approved | rejected
    decided_by: str | None = None
    decided_at: int | None = None
    decision: str = ""


def check_role(who: str, project: str, held: Role | None, needed: Role) -> None:
    """Refuse unless `held` is at least `needed`; without a role, the project does not exist."""
    if held is None:
        raise NotFound(f"project {project!r} does not exist")
    if not held.allows(needed):
        raise PermissionDenied(f"{who} is {held.value} on project {project!r}; this needs {needed.value}")
