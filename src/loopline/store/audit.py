"""The audit log in SQL: appends are serialised so the hash chain stays one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, select, text

from loopline.core.audit import GENESIS, AuditEntry, entry_hash
from loopline.store.database import Database, json_text
from loopline.store.schema import audit_log


def _cell(text: str) -> Any:
    """A stored JSON value; one that no longer parses (edited by hand) is kept as its text,
    so the entry is still listed and its hash no longer matches."""
    try:
        return json.loads(text)
    except ValueError:
        return {"unreadable": text}


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        row.id, row.at, row.actor, row.action, row.target, _cell(row.before), _cell(row.after),
        row.reason, row.prev_hash, row.hash, _cell(row.details), row.key_id,
    )  # fmt: skip


class SqlAuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, entry: AuditEntry, key: bytes | None = None) -> AuditEntry:
        """Store `entry` after the newest one, chained to it (its id and hashes are set here);
        with `key` (the secret of `entry.key_id`) its hash is an HMAC under that key."""
        # Values go through JSON first, so the hash covers exactly what is stored.
        before, after = json.loads(json_text(entry.before)), json.loads(json_text(entry.after))
        details = json.loads(json_text(entry.details))

        def work(conn: Connection) -> AuditEntry:
            if self._db.dialect == "postgresql":  # SQLite writers are serialised already
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.audit'))"))
            last = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).scalar()
            prev = last or GENESIS
            digest = entry_hash(prev, entry.at, entry.actor, entry.action, entry.target, before, after,
                                entry.reason, details, key)  # fmt: skip
            new_id = conn.execute(
                audit_log.insert()
                .values(
                    at=entry.at,
                    actor=entry.actor,
                    action=entry.action,
                    target=entry.target,
                    before=json_text(before),
                    after=json_text(after),
                    reason=entry.reason,
                    details=json_text(details),
                    prev_hash=prev,
                    hash=digest,
                    key_id=entry.key_id,
                )
                .returning(audit_log.c.id)
            ).scalar_one()
            return AuditEntry(new_id, entry.at, entry.actor, entry.action, entry.target, before, after,
                              entry.reason, prev, digest, details, entry.key_id)  # fmt: skip

        return self._db.write(work)

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
        """The newest entries first, filtered; `action` and `target` match as prefixes."""
        stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if actor is not None:
            stmt = stmt.where(audit_log.c.actor == actor)
        if action is not None:
            stmt = stmt.where(audit_log.c.action.startswith(action, autoescape=True))
        if target is not None:
            stmt = stmt.where(audit_log.c.target.startswith(target, autoescape=True))
        if since_ms is not None:
            stmt = stmt.where(audit_log.c.at >= since_ms)
        if until_ms is not None:
            stmt = stmt.where(audit_log.c.at <= until_ms)
        if before_id is not None:
            stmt = stmt.where(audit_log.c.id < before_id)
        return self._db.read(lambda conn: [_entry(r) for r in conn.execute(stmt)])

    def chain(self, batch: int = 5000) -> Iterator[AuditEntry]:
        """Every entry, oldest first, in batches."""
        after = 0
        while True:
            stmt = select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id).limit(batch)
            rows = self._db.read(lambda conn, stmt=stmt: [_entry(r) for r in conn.execute(stmt)])  # type: ignore[misc]
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].id
