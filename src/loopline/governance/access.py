"""Who may do what: users, API tokens (random, shown once, stored as a hash) and roles per
project. Deny by default: a user without a role on a project is told it does not exist."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

from loopline.core.access import ApiToken, Role, User
from loopline.core.clock import now_ms
from loopline.core.entities import Principal
from loopline.core.errors import AlreadyExists, InvalidInput, PermissionDenied, Unauthenticated
from loopline.core.identities import IdentityPolicy
from loopline.core.names import RESERVED_USERS
from loopline.core.validation import check_name
from loopline.governance import identities
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.store import MetadataStore, atomic

TOKEN_PREFIX = "ll_"
DAY_MS = 86_400_000

MAX_TOKEN_DAYS = 36_500  # a hundred years: further is no expiry, and overflows a timestamp


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _name(kind: str, name: str) -> str:
    if (
        len(check_name(kind, name)) > 128
        or not name.replace("-", "").replace("_", "").replace(".", "").isalnum()
    ):
        raise InvalidInput(f"{kind} {name!r} must be letters, digits, '-', '_' or '.', at most 128 of them")
    return name


class AccessService:
    def __init__(self, store: MetadataStore, *, authorizer: Authorizer, audit: AuditTrail) -> None:
        self._store = store
        self.principal = authorizer.principal
        self._access = authorizer
        self._audit = audit

    def _require_admin(self, what: str) -> None:
        if not self.principal.is_owner:
            raise PermissionDenied(f"only an administrator may {what}")

    # users and tokens ------------------------------------------------------------------------

    @atomic
    def create_user(self, name: str, *, admin: bool = False) -> User:
        """A new user (administrators only). Names are unique whatever their case, and the
        names of who acts without being a user (`anonymous`, `loopline`, `root`) are reserved."""
        self._require_admin("create users")
        name = _name("user name", name)
        if name.lower() in RESERVED_USERS:
            raise InvalidInput(f"user name {name!r} is reserved")
        twin = next((u.name for u in self._store.access.users() if u.name.lower() == name.lower()), None)
        if twin is not None:
            raise AlreadyExists(f"user {twin!r} exists; names that differ only in case are one name")
        user = self._store.access.add_user(name, admin, now_ms())
        self._audit.record("user.create", f"user:{name}", after={"admin": admin})
        return user

    def users(self) -> list[User]:
        self._require_admin("list users")
        return self._store.access.users()

    @atomic
    def create_token(
        self, user: str, name: str = "default", expires_days: float | None = None
    ) -> tuple[ApiToken, str]:
        """A new token for `user`: returns its record and the secret, which is never stored."""
        if self.principal.name != user:
            self._require_admin("create tokens for other users")
        if expires_days is not None and not 0 < expires_days <= MAX_TOKEN_DAYS:  # NaN fails too
            raise InvalidInput(
                f"a token must expire after a positive number of days, at most {MAX_TOKEN_DAYS:,}, "
                f"not {expires_days}"
            )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = now_ms()
        expires = None if expires_days is None else now + int(expires_days * DAY_MS)
        token = self._store.access.add_token(
            user, _name("token name", name), token_hash(secret), secret[:10], now, expires
        )
        self._audit.record("token.create", f"user:{user}", after={"token": token.id, "prefix": token.prefix})
        return token, secret

    def tokens(self, user: str) -> list[ApiToken]:
        if self.principal.name != user:
            self._require_admin("list other users' tokens")
        return self._store.access.tokens(user)

    @atomic
    def revoke_token(self, token_id: int) -> ApiToken:
        token = self._store.access.token(token_id)
        if token.user != self.principal.name:
            self._require_admin("revoke other users' tokens")
        revoked = self._store.access.revoke_token(token_id, now_ms())
        self._audit.record("token.revoke", f"user:{token.user}", before={"token": token_id})
        return revoked

    def sign_in_with_identity(
        self, issuer: str, subject: str, claims: Mapping[str, object], policy: IdentityPolicy
    ) -> Principal:
        """The user of an identity that an OpenID Connect provider vouched for, created on first
        sign-in; the provider's groups set their roles (see `governance.identities`). Only the
        server, once it has verified the provider's ID token, calls this (as an administrator).

        Refused when the user is disabled, or when the mapping names none of their groups
        (unless `policy.allow_unmapped`): then no user is created, and an existing one keeps
        only the roles their groups still give."""
        self._require_admin("sign users in by an identity")
        outcome = self._store.atomically(
            lambda: identities.sign_in(self._store, self._audit, issuer, subject, claims, policy)
        )
        if outcome.refusal is not None:
            raise PermissionDenied(outcome.refusal)
        return outcome.principal

    def authenticate(self, secret: str | None) -> Principal:
        """The user a token belongs to; refused when it is missing, unknown, revoked or expired."""
        if not secret:
            raise Unauthenticated("no token: send it as 'Authorization: Bearer <token>'")
        return _principal(self._store.access.token_by_hash(token_hash(secret)))

    def authenticate_cached(self, secret: str | None) -> Principal | None:
        """`authenticate` from what the store remembers; None when it must ask the database."""
        if not secret:
            raise Unauthenticated("no token: send it as 'Authorization: Bearer <token>'")
        found = self._store.access.cached_token(token_hash(secret))
        return None if found is None else _principal(found)

    # roles -------------------------------------------------------------------------------------

    @atomic
    def set_role(self, project: str, user: str, role: Role) -> None:
        self.require(project, Role.OWNER)
        before = self._store.access.role(project, user)
        self._store.access.set_role(project, user, role)
        self._audit.record("member.role", f"project:{project}/{user}", before=before, after=role.value)

    @atomic
    def remove_member(self, project: str, user: str) -> None:
        self.require(project, Role.OWNER)
        before = self._store.access.role(project, user)
        self._store.access.remove_member(project, user)
        self._audit.record("member.remove", f"project:{project}/{user}", before=before)

    def my_roles(self) -> dict[str, Role]:
        """The projects the acting principal holds a role on."""
        return self._store.access.roles_of(self.principal.name)

    def members(self, project: str) -> list[tuple[str, Role]]:
        self.require(project, Role.VIEWER)
        return self._store.access.members(project)

    def require(self, project: str, needed: Role) -> None:
        """Refuse unless the principal holds `needed` (or more) on `project`. A user with no
        role there learns nothing about it: NotFound, as if it did not exist."""
        self._access.require(project, needed)


def _principal(found: tuple[ApiToken, User] | None) -> Principal:
    if found is None:
        raise Unauthenticated("the token is not valid")
    token, user = found
    if token.revoked_at is not None:
        raise Unauthenticated("the token was revoked")
    if token.expires_at is not None and token.expires_at <= now_ms():
        raise Unauthenticated("the token has expired")
    if user.disabled:
        raise Unauthenticated(f"user {user.name!r} is disabled")
    return Principal(user.name, is_owner=user.is_admin)
