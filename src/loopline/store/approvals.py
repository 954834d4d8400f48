"""Protected aliases and the requests to move them, in SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from loopline.core.access import AliasRequest
from loopline.core.errors import NotFound
from loopline.store.database import Database
from loopline.store.schema import alias_requests, protected_aliases


def _request(row: Any) -> AliasRequest:
    return AliasRequest(
        row.id, row.model, row.alias, row.version, row.requested_by, row.requested_at, row.reason, row.status,
        row.decided_by, row.decided_at, row.decision,
    )  # fmt: skip


class SqlApprovalStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def protect(self, model: str, alias: str) -> None:
        stmt = self._db.insert(protected_aliases).values(model=model, alias=alias).on_conflict_do_nothing()
        self._db.write(lambda conn: conn.execute(stmt))

    def unprotect(self, model: str, alias: str) -> None:
        stmt = delete(protected_aliases).where(
            protected_aliases.c.model == model, protected_aliases.c.alias == alias
        )
        self._db.write(lambda conn: conn.execute(stmt))

    def is_protected(self, model: str, alias: str) -> bool:
        stmt = select(protected_aliases.c.alias).where(
            protected_aliases.c.model == model, protected_aliases.c.alias == alias
        )
        return self._db.read(lambda conn: conn.execute(stmt).first() is not None)

    def protected(self, model: str) -> list[str]:
        stmt = (
            select(protected_aliases.c.alias)
            .where(protected_aliases.c.model == model)
            .order_by(protected_aliases.c.alias)
        )
        return self._db.read(lambda conn: list(conn.execute(stmt).scalars()))

    def add_request(
        self, model: str, alias: str, version: int, by: str, at: int, reason: str
    ) -> AliasRequest:
        values = {
            "model": model, "alias": alias, "version": version, "requested_by": by, "requested_at": at,
            "reason": reason, "status": "pending", "decision": "",
        }  # fmt: skip
        stmt = alias_requests.insert().values(**values).returning(alias_requests.c.id)
        return self.request(self._db.write(lambda conn: int(conn.execute(stmt).scalar_one())))

    def request(self, request_id: int) -> AliasRequest:
        stmt = select(alias_requests).where(alias_requests.c.id == request_id)
        row = self._db.read(lambda conn: conn.execute(stmt).one_or_none())
        if row is None:
            raise NotFound(f"alias request {request_id} does not exist (see `loopline models requests`)")
        return _request(row)

    def requests(self, model: str | None = None, status: str | None = None) -> list[AliasRequest]:
        stmt = select(alias_requests).order_by(alias_requests.c.id.desc())
        if model is not None:
            stmt = stmt.where(alias_requests.c.model == model)
        if status is not None:
            stmt = stmt.where(alias_requests.c.status == status)
        return self._db.read(lambda conn: [_request(r) for r in conn.execute(stmt)])

    def decide(self, request_id: int, status: str, by: str, at: int, decision: str) -> bool:
        """Approve or reject a pending request; False if someone decided it already."""
        stmt = (
            update(alias_requests)
            .where(alias_requests.c.id == request_id, alias_requests.c.status == "pending")
            .values(status=status, decided_by=by, decided_at=at, decision=decision)
        )
        return bool(self._db.write(lambda conn: conn.execute(stmt).rowcount))
