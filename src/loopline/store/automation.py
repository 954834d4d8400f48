"""Schedules, triggers and jobs in SQL. Every hand-over between workers is a conditional
UPDATE whose row count says who won, so two workers never both take the same thing."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from loopline.core.automation import Job, JobKind, JobStatus, Schedule, Trigger
from loopline.core.errors import AlreadyExists, NotFound
from loopline.store.database import Database, json_text
from loopline.store.schema import jobs, schedules, triggers


def _schedule(row: Any) -> Schedule:
    return Schedule(
        row.name, row.cron, JobKind(row.kind), row.target, json.loads(row.params), row.enabled,
        row.next_at, row.last_at, row.created_at, row.created_by,
    )  # fmt: skip


def _trigger(row: Any) -> Trigger:
    return Trigger(
        row.name, row.monitor, row.rule, JobKind(row.kind), row.target, json.loads(row.params),
        row.cooldown_s, row.enabled, row.last_alert_id, row.last_fired_at, row.created_at, row.created_by,
    )  # fmt: skip


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        kind=JobKind(row.kind),
        target=row.target,
        params=json.loads(row.params),
        reason=row.reason,
        status=JobStatus(row.status),
        attempts=row.attempts,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        result=json.loads(row.result),
        error=row.error,
    )


class SqlAutomationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # schedules -----------------------------------------------------------------------------

    def add_schedule(self, schedule: Schedule) -> Schedule:
        values = {
            "name": schedule.name,
            "cron": schedule.cron,
            "kind": schedule.kind.value,
            "target": schedule.target,
            "params": json_text(schedule.params),
            "enabled": schedule.enabled,
            "next_at": schedule.next_at,
            "created_at": schedule.created_at,
            "created_by": schedule.created_by,
        }
        try:
            self._db.write(lambda conn: conn.execute(schedules.insert().values(**values)))
        except IntegrityError:
            raise AlreadyExists(f"schedule {schedule.name!r} already exists") from None
        return schedule

    def schedules(self) -> list[Schedule]:
        stmt = select(schedules).order_by(schedules.c.name)
        return self._db.read(lambda conn: [_schedule(r) for r in conn.execute(stmt)])

    def delete_schedule(self, name: str) -> None:
        if not self._db.write(
            lambda conn: conn.execute(delete(schedules).where(schedules.c.name == name)).rowcount
        ):
            raise NotFound(f"schedule {name!r} does not exist (see `loopline schedules list`)")

    def advance_schedule(self, name: str, due_at: int, next_at: int) -> bool:
        """Move a due schedule on to `next_at`; False if another worker already did."""
        stmt = (
            update(schedules)
            .where(schedules.c.name == name, schedules.c.next_at == due_at)
            .values(next_at=next_at, last_at=due_at)
        )
        return bool(self._db.write(lambda conn: conn.execute(stmt).rowcount))

    # triggers ------------------------------------------------------------------------------

    def add_trigger(self, trigger: Trigger) -> Trigger:
        values = {
            "name": trigger.name,
            "monitor": trigger.monitor,
            "rule": trigger.rule,
            "kind": trigger.kind.value,
            "target": trigger.target,
            "params": json_text(trigger.params),
            "cooldown_s": trigger.cooldown_s,
            "enabled": trigger.enabled,
            "last_alert_id": trigger.last_alert_id,
            "created_at": trigger.created_at,
            "created_by": trigger.created_by,
        }
        try:
            self._db.write(lambda conn: conn.execute(triggers.insert().values(**values)))
        except IntegrityError:
            raise AlreadyExists(f"trigger {trigger.name!r} already exists") from None
        return trigger

    def triggers(self) -> list[Trigger]:
        stmt = select(triggers).order_by(triggers.c.name)
        return self._db.read(lambda conn: [_trigger(r) for r in conn.execute(stmt)])

    def delete_trigger(self, name: str) -> None:
        if not self._db.write(
            lambda conn: conn.execute(delete(triggers).where(triggers.c.name == name)).rowcount
        ):
            raise NotFound(f"trigger {name!r} does not exist (see `loopline triggers list`)")

    def consider_alert(self, name: str, alert_id: int) -> bool:
        """Mark alert `alert_id` as considered by the trigger; False if it already was."""
        stmt = (
            update(triggers)
            .where(triggers.c.name == name, triggers.c.last_alert_id < alert_id)
            .values(last_alert_id=alert_id)
        )
        return bool(self._db.write(lambda conn: conn.execute(stmt).rowcount))

    def fire(self, name: str, now: int, cooldown_ms: int) -> bool:
        """Record that the trigger fires now, unless it fired within its cool-down."""
        stmt = (
            update(triggers)
            .where(
                triggers.c.name == name,
                or_(triggers.c.last_fired_at.is_(None), triggers.c.last_fired_at <= now - cooldown_ms),
            )
            .values(last_fired_at=now)
        )
        return bool(self._db.write(lambda conn: conn.execute(stmt).rowcount))

    # jobs ----------------------------------------------------------------------------------

    def enqueue(
        self,
        kind: JobKind,
        target: str,
        params: dict[str, Any],
        reason: str,
        now: int,
        dedupe_key: str | None = None,
        status: JobStatus = JobStatus.QUEUED,
        error: str | None = None,
    ) -> Job | None:
        """A new job, or None when one with the same `dedupe_key` exists already."""
        values = {
            "kind": kind.value,
            "target": target,
            "params": json_text(params),
            "reason": reason,
            "dedupe_key": dedupe_key,
            "status": status.value,
            "attempts": 0,
            "created_at": now,
            "ended_at": None if status is JobStatus.QUEUED else now,
            "result": "{}",
            "error": error,
        }

        def work(conn: Connection) -> int | None:
            stmt = self._db.insert(jobs).values(**values).on_conflict_do_nothing().returning(jobs.c.id)
            return conn.execute(stmt).scalar()

        job_id = self._db.write(work)
        return None if job_id is None else self.job(job_id)

    def job(self, job_id: int) -> Job:
        row = self._db.read(lambda conn: conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none())
        if row is None:
            raise NotFound(f"job {job_id} does not exist (see `loopline jobs list`)")
        return _job(row)

    def jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        stmt = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(jobs.c.status == status.value)
        return self._db.read(lambda conn: [_job(r) for r in conn.execute(stmt)])

    def claim(self, owner: str, now: int, lease_ms: int) -> Job | None:
        """Take the oldest job that is queued, or running under an expired lease."""
        claimable = or_(
            jobs.c.status == JobStatus.QUEUED.value,
            and_(jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expires_at < now),
        )
        candidates = self._db.read(
            lambda conn: list(
                conn.execute(select(jobs.c.id).where(claimable).order_by(jobs.c.id).limit(10)).scalars()
            )
        )
        for job_id in candidates:
            stmt = (
                update(jobs)
                .where(jobs.c.id == job_id, claimable)
                .values(
                    status=JobStatus.RUNNING.value,
                    lease_owner=owner,
                    lease_expires_at=now + lease_ms,
                    attempts=jobs.c.attempts + 1,
                    started_at=now,
                )
            )
            if self._db.write(lambda conn, stmt=stmt: conn.execute(stmt).rowcount):  # type: ignore[misc]
                return self.job(job_id)
        return None

    def renew(self, job_id: int, owner: str, expires_at: int) -> bool:
        """Extend the lease; False if the job is no longer this owner's."""
        stmt = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_owner == owner, jobs.c.status == JobStatus.RUNNING.value)
            .values(lease_expires_at=expires_at)
        )
        return bool(self._db.write(lambda conn: conn.execute(stmt).rowcount))

    def finish(
        self, job_id: int, owner: str, status: JobStatus, now: int, result: dict[str, Any], error: str | None
    ) -> bool:
        stmt = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_owner == owner, jobs.c.status == JobStatus.RUNNING.value)
            .values(status=status.value, ended_at=now, result=json_text(result), error=error)
            .values(lease_expires_at=None)
        )
        return bool(self._db.write(lambda conn: conn.execute(stmt).rowcount))
