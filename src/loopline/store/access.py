"""Users, API tokens and project roles in SQL."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from loopline.core.access import ApiToken, Role, User
from loopline.core.errors import AlreadyExists, NotFound
from loopline.core.identities import Identity
from loopline.store.database import Database
from loopline.store.schema import api_tokens, project_members, user_identities, users


def _user(row: Any) -> User:
    return User(row.id, row.name, row.is_admin, row.created_at, row.disabled)


def _token(row: Any) -> ApiToken:
    return ApiToken(
        row.id, row.user_name, row.name, row.prefix, row.created_at, row.expires_at, row.revoked_at
    )


_TOKENS = select(api_tokens, users.c.name.label("user_name")).join_from(api_tokens, users)


TOKEN_CACHE_SECONDS = 5.0
"""How long a found token is trusted without asking the database again. A revocation through
the same process applies at once; one made by another process within this time."""


class SqlAccessStore:
    def __init__(self, db: Database, cache_limit: int = 10_000) -> None:
        self._db = db
        self._tokens: dict[str, tuple[float, tuple[ApiToken, User]]] = {}
        self._cache_limit = cache_limit

    def _user_id(self, conn: Connection, name: str) -> int:
        found = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
        if found is None:
            raise NotFound(f"user {name!r} does not exist (see `loopline users list`)")
        return int(found)

    def add_user(self, name: str, is_admin: bool, now: int) -> User:
        values = {"name": name, "is_admin": is_admin, "disabled": False, "created_at": now}
        try:
            self._db.write(lambda conn: conn.execute(users.insert().values(**values)))
        except IntegrityError:
            raise AlreadyExists(f"user {name!r} already exists") from None
        return self.user(name)

    def user(self, name: str) -> User:
        row = self._db.read(
            lambda conn: conn.execute(select(users).where(users.c.name == name)).one_or_none()
        )
        if row is None:
            raise NotFound(f"user {name!r} does not exist (see `loopline users list`)")
        return _user(row)

    def users(self) -> list[User]:
        return self._db.read(
            lambda conn: [_user(r) for r in conn.execute(select(users).order_by(users.c.name))]
        )

    def add_token(
        self, user: str, name: str, token_hash: str, prefix: str, now: int, expires_at: int | None
    ) -> ApiToken:
        def work(conn: Connection) -> int:
            values = {
                "user_id": self._user_id(conn, user), "name": name, "token_hash": token_hash,
                "prefix": prefix, "created_at": now, "expires_at": expires_at,
            }  # fmt: skip
            return int(
                conn.execute(api_tokens.insert().values(**values).returning(api_tokens.c.id)).scalar_one()
            )

        token_id = self._db.write(work)
        return self._db.read(
            lambda conn: _token(conn.execute(_TOKENS.where(api_tokens.c.id == token_id)).one())
        )

    def cached_token(self, token_hash: str) -> tuple[ApiToken, User] | None:
        """The token and its user if found within TOKEN_CACHE_SECONDS; never asks the database."""
        cached = self._tokens.get(token_hash)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def token_by_hash(self, token_hash: str) -> tuple[ApiToken, User] | None:
        """The token and its user; every request asks, so found ones are cached briefly."""
        cached = self.cached_token(token_hash)
        if cached is not None:
            return cached
        stmt = (
            select(api_tokens, users.c.name.label("user_name"), users.c.is_admin, users.c.disabled)
            .join_from(api_tokens, users)
            .where(api_tokens.c.token_hash == token_hash)
        )
        row = self._db.read(lambda conn: conn.execute(stmt).one_or_none())
        if row is None:
            return None
        found = _token(row), User(row.user_id, row.user_name, row.is_admin, 0, row.disabled)
        if len(self._tokens) >= self._cache_limit:
            self._tokens.clear()
        self._tokens[token_hash] = (time.monotonic() + TOKEN_CACHE_SECONDS, found)
        return found

    def tokens(self, user: str) -> list[ApiToken]:
        def work(conn: Connection) -> list[ApiToken]:
            stmt = _TOKENS.where(api_tokens.c.user_id == self._user_id(conn, user)).order_by(api_tokens.c.id)
            return [_token(r) for r in conn.execute(stmt)]

        return self._db.read(work)

    def token(self, token_id: int) -> ApiToken:
        stmt = _TOKENS.where(api_tokens.c.id == token_id)
        row = self._db.read(lambda conn: conn.execute(stmt).one_or_none())
        if row is None:
            raise NotFound(f"token {token_id} does not exist (see `loopline tokens list USER`)")
        return _token(row)

    def revoke_token(self, token_id: int, now: int) -> ApiToken:
        stmt = update(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        self._db.write(lambda conn: conn.execute(stmt.values(revoked_at=now)))
        self._tokens.clear()
        return self.token(token_id)

    def set_role(self, project: str, user: str, role: Role) -> None:
        def work(conn: Connection) -> None:
            user_id = self._user_id(conn, user)
            stmt = self._db.insert(project_members).values(project=project, user_id=user_id, role=role.value)
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["project", "user_id"], set_={"role": role.value})
            )

        self._db.write(work)

    def remove_member(self, project: str, user: str) -> None:
        def work(conn: Connection) -> int:
            stmt = delete(project_members).where(
                project_members.c.project == project, project_members.c.user_id == self._user_id(conn, user)
            )
            return int(conn.execute(stmt).rowcount)

        if not self._db.write(work):
            raise NotFound(f"user {user!r} is not a member of project {project!r}")

    def role(self, project: str, user: str) -> Role | None:
        stmt = (
            select(project_members.c.role)
            .join_from(project_members, users)
            .where(project_members.c.project == project, users.c.name == user)
        )
        found = self._db.read(lambda conn: conn.execute(stmt).scalar())
        return None if found is None else Role(found)

    def members(self, project: str) -> list[tuple[str, Role]]:
        stmt = (
            select(users.c.name, project_members.c.role)
            .join_from(project_members, users)
            .where(project_members.c.project == project)
            .order_by(users.c.name)
        )
        return self._db.read(lambda conn: [(r.name, Role(r.role)) for r in conn.execute(stmt)])

    def roles_of(self, user: str) -> dict[str, Role]:
        """Every project `user` holds a role on."""
        stmt = (
            select(project_members.c.project, project_members.c.role)
            .join_from(project_members, users)
            .where(users.c.name == user)
        )
        return self._db.read(lambda conn: {r.project: Role(r.role) for r in conn.execute(stmt)})

    def set_admin(self, user: str, is_admin: bool) -> None:
        """Make `user` an administrator, or no longer one."""
        stmt = update(users).where(users.c.name == user).values(is_admin=is_admin)
        if not self._db.write(lambda conn: int(conn.execute(stmt).rowcount)):
            raise NotFound(f"user {user!r} does not exist (see `loopline users list`)")
        self._tokens.clear()  # a cached token carries the old flag

    # identities at an OpenID Connect provider -------------------------------------------------

    def identity(self, issuer: str, subject: str) -> Identity | None:
        """The provider identity (`issuer`, `subject`) and its user; None if it never signed in."""
        stmt = (
            select(user_identities, users.c.name.label("user_name"))
            .join_from(user_identities, users)
            .where(user_identities.c.issuer == issuer, user_identities.c.subject == subject)
        )
        row = self._db.read(lambda conn: conn.execute(stmt).one_or_none())
        if row is None:
            return None
        groups = tuple(json.loads(row.groups))
        return Identity(
            row.issuer, row.subject, row.user_name, row.email, groups, row.created_at, row.last_seen_at
        )

    def add_identity(self, identity: Identity) -> None:
        """Link a provider identity to its (existing) user."""

        def work(conn: Connection) -> None:
            values = {
                "issuer": identity.issuer, "subject": identity.subject,
                "user_id": self._user_id(conn, identity.user), "email": identity.email,
                "groups": json.dumps(list(identity.groups)), "created_at": identity.created_at,
                "last_seen_at": identity.last_seen_at,
            }  # fmt: skip
            conn.execute(user_identities.insert().values(**values))

        try:
            self._db.write(work)
        except IntegrityError:
            raise AlreadyExists(
                f"identity {identity.subject!r} of {identity.issuer} is linked already; sign in again"
            ) from None

    def update_identity(
        self, issuer: str, subject: str, email: str | None, groups: tuple[str, ...], now: int
    ) -> None:
        """Record an identity's e-mail and groups as of a sign-in at `now`."""
        stmt = (
            update(user_identities)
            .where(user_identities.c.issuer == issuer, user_identities.c.subject == subject)
            .values(email=email, groups=json.dumps(list(groups)), last_seen_at=now)
        )
        self._db.write(lambda conn: conn.execute(stmt))
