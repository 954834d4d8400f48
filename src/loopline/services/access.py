"""The interfaces of access control and of the audit trail."""

from __future__ import annotations

from typing import Protocol

from loopline.core.access import ApiToken, Role, User
from loopline.core.audit import AuditEntry, Verification
from loopline.core.entities import Principal


class Access(Protocol):
    """Users, API tokens and project roles, acting as `principal`."""

    principal: Principal

    def create_user(self, name: str, *, admin: bool = False) -> User:
        """A new user (administrators only)."""

    def users(self) -> list[User]:
        """Every user (administrators only)."""

    def create_token(
        self, user: str, name: str = "default", expires_days: float | None = None
    ) -> tuple[ApiToken, str]:
        """A new token of `user` and its secret, which is shown this once and stored as a hash."""

    def tokens(self, user: str) -> list[ApiToken]:
        """The tokens of `user` (their secrets are never stored)."""

    def revoke_token(self, token_id: int) -> ApiToken:
        """Revoke a token at once."""

    def set_role(self, project: str, user: str, role: Role) -> None:
        """Give `user` `role` on `project` (owners of the project only)."""

    def remove_member(self, project: str, user: str) -> None:
        """Take `user`'s role on `project` away."""

    def my_roles(self) -> dict[str, Role]:
        """The projects the acting principal holds a role on."""

    def members(self, project: str) -> list[tuple[str, Role]]:
        """Who holds which role on `project`."""

    def require(self, project: str, needed: Role) -> None:
        """Refuse unless the principal holds `needed` (or more) on `project`."""


class Audit(Protocol):
    """The tamper-evident trail of every change: read and verified by administrators."""

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries, newest first, filtered by who, what (an action prefix), on what, from and
        until when; `before_id` pages: the entries older than the last one seen."""

    def verify(self, max_problems: int = 20, anchor: str | None = None) -> Verification:
        """Walk the hash chain; with `anchor` (a head noted earlier) catch entries cut from the end."""
