"""Users, tokens, members and the audit trail over HTTP: the same methods as in process."""

from __future__ import annotations

from loopline.client.connection import ServerConnection, segment
from loopline.core.access import ApiToken, Role, User, check_role
from loopline.core.audit import AuditEntry, Verification
from loopline.core.entities import Principal
from loopline.core.wire import decode


class RemoteAccessService:
    """Users, tokens and roles on the server, as the token's owner; tokens are checked there."""

    def __init__(self, connection: ServerConnection, principal: Principal) -> None:
        self._connection = connection
        self.principal = principal

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


class RemoteAuditTrail:
    """The server's audit trail: read and verified there, by administrators. Services record
    on it as they act; a client never writes to it."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

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
        params = {
            "actor": actor,
            "action": action,
            "target": target,
            "since_ms": since_ms,
            "until_ms": until_ms,
            "before_id": before_id,
            "max_results": limit,
        }
        found = self._connection.call("GET", "/audit", params=params)
        return [decode(AuditEntry, e) for e in found["items"]]

    def verify(self, max_problems: int = 20, anchor: str | None = None) -> Verification:
        check = self._connection.call(
            "GET", "/audit/verify", params={} if anchor is None else {"anchor": anchor}
        )
        return Verification(
            check["entries"], check["head"], check["problems"][:max_problems], check["unsealed"]
        )
