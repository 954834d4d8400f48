"""Retraining loops and their events in SQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import or_, select, update

from loopline.core.errors import NotFound
from loopline.core.loops import Loop, LoopEvent, LoopState
from loopline.store.database import Database
from loopline.store.schema import loop_events, loops


def _loop(row: Any) -> Loop:
    return Loop(
        row.deployment, json.loads(row.policy), LoopState(row.state), row.champion, row.challenger,
        row.stage_started_at, row.cooldown_until, row.updated_at,
    )  # fmt: skip


class SqlLoopStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def declare(self, deployment: str, policy: dict[str, Any], now: int) -> Loop:
        """Create the loop, or replace its policy (its state and history stay)."""
        text = json.dumps(policy, sort_keys=True)
        stmt = (
            self._db.insert(loops)
            .values(deployment=deployment, policy=text, state=LoopState.IDLE.value, updated_at=now)
            .on_conflict_do_update(index_elements=["deployment"], set_={"policy": text, "updated_at": now})
        )
        self._db.write(lambda conn: conn.execute(stmt))
        return self.get(deployment)

    def get(self, deployment: str) -> Loop:
        row = self._db.read(
            lambda conn: conn.execute(select(loops).where(loops.c.deployment == deployment)).one_or_none()
        )
        if row is None:
            raise NotFound(f"deployment {deployment!r} has no retraining loop (see `loopline loop declare`)")
        return _loop(row)

    def list_all(self) -> list[Loop]:
        stmt = select(loops).order_by(loops.c.deployment)
        return self._db.read(lambda conn: [_loop(r) for r in conn.execute(stmt)])

    def move(
        self,
        deployment: str,
        from_state: LoopState,
        to_state: LoopState,
        now: int,
        cooled_by: int | None = None,
        **values: Any,
    ) -> bool:
        """Change state if it is still `from_state` (and, with `cooled_by`, its cool-down has
        ended by then); False if another worker moved it first."""
        stmt = update(loops).where(loops.c.deployment == deployment, loops.c.state == from_state.value)
        if cooled_by is not None:
            stmt = stmt.where(or_(loops.c.cooldown_until.is_(None), loops.c.cooldown_until <= cooled_by))
        stmt = stmt.values(state=to_state.value, updated_at=now, **values)
        return bool(self._db.write(lambda conn: conn.execute(stmt).rowcount))

    def record(self, event: LoopEvent) -> LoopEvent:
        values = {
            "deployment": event.deployment,
            "at": event.at,
            "kind": event.kind,
            "message": event.message,
            "actor": event.actor,
            "evidence": json.dumps(event.evidence, sort_keys=True, default=str),
        }
        stmt = loop_events.insert().values(**values).returning(loop_events.c.id)
        event_id = self._db.write(lambda conn: conn.execute(stmt).scalar_one())
        return LoopEvent(
            event_id, event.deployment, event.at, event.kind, event.message, event.actor, event.evidence
        )

    def events(self, deployment: str, limit: int = 200) -> list[LoopEvent]:
        """The newest `limit` events, oldest first."""
        stmt = (
            select(loop_events)
            .where(loop_events.c.deployment == deployment)
            .order_by(loop_events.c.id.desc())
            .limit(limit)
        )
        rows = self._db.read(lambda conn: list(conn.execute(stmt)))
        return [
            LoopEvent(r.id, r.deployment, r.at, r.kind, r.message, r.actor, json.loads(r.evidence))
            for r in reversed(rows)
        ]
