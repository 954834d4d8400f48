"""Users, tokens, members and the audit trail over HTTP: the same methods as in process."""

from __future__ import annotations

from typing import Any

from loopline.client.connection import ServerConnection, segment
from loopline.client.tracking import whoami
from loopline.core.access import ApiToken, Role, User
from loopline.core.audit import AuditEntry
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput
from loopline.core.wire import decode
from loopline.governance.access import AccessService
from loopline.governance.audit import AuditTrail, Verification
from loopline.governance.authorization import check_role


def server_only(what: str) -> InvalidInput:
    return InvalidInput(f"{what} happens on the server; a client cannot do it")


class RemoteAccessService(AccessService):
    def __init__(self, connection: ServerConnection, principal: Principal | None = None) -> None:
        self._connection = connection
        self.principal = principal or whoami(connection)

    def create_user(self, name: str, *, admin: bool = False) -> User:
        body = {"name": name, "admin": admin}
        return decode(User, self._connection.call("POST", "/users", json=body))

    def users(self) -> list[User]:
        return [decode(User, u) for u in self._connection.pages("/users")]

    def create_token(
        self, user: str, name: str = "default", expires_days: float | None = None
    ) -> tuple[ApiToken, str]:
        body = {"name": name, "expires_days": expires_days}
        created = self._connection.call("POST", f"/users/{segment(user)}/tokens", json=body)
        secret = created.pop("token")
        return decode(ApiToken, created), secret

    def tokens(self, user: str) -> list[ApiToken]:
        return [decode(ApiToken, t) for t in self._connection.pages(f"/users/{segment(user)}/tokens")]

    def revoke_token(self, token_id: int) -> ApiToken:
        return decode(ApiToken, self._connection.call("DELETE", f"/tokens/{token_id}"))

    def authenticate(self, secret: str | None) -> Principal:
        raise server_only("checking a token")

    def authenticate_cached(self, secret: str | None) -> Principal | None:
        raise server_only("checking a token")

    def set_role(self, project: str, user: str, role: Role) -> None:
        path = f"/projects/{segment(project)}/members/{segment(user)}"
        self._connection.call("PUT", path, json={"role": Role(role).value})

    def remove_member(self, project: str, user: str) -> None:
        self._connection.call("DELETE", f"/projects/{segment(project)}/members/{segment(user)}")

    def my_roles(self) -> dict[str, Role]:
        roles = self._connection.call("GET", "/whoami")["roles"]
        return {project: Role(role) for project, role in roles.items()}

    def members(self, project: str) -> list[tuple[str, Role]]:
        found = self._connection.pages(f"/projects/{segment(project)}/members")
        return [(m["user"], Role(m["role"])) for m in found]

    def require(self, project: str, needed: Role) -> None:
        if not self.principal.is_owner:
            check_role(self.principal.name, project, self.my_roles().get(project), needed)


class RemoteAuditTrail(AuditTrail):
    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    def record(self, action: str, target: str, **kwargs: Any) -> AuditEntry:
        raise server_only("recording on the audit trail")

    def entries(self, **filters: Any) -> list[AuditEntry]:
        limit = int(filters.pop("limit", 100))
        found = self._connection.call("GET", "/audit", params={**filters, "max_results": limit})
        return [decode(AuditEntry, e) for e in found["items"]]

    def verify(self, max_problems: int = 20, anchor: str | None = None) -> Verification:
        check = self._connection.call(
            "GET", "/audit/verify", params={} if anchor is None else {"anchor": anchor}
        )
        return Verification(check["entries"], check["head"], check["problems"][:max_problems])
