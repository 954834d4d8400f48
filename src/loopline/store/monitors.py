"""Monitors, monitor runs and alerts in SQL."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from loopline.core.errors import AlreadyExists, NotFound
from loopline.core.monitoring import Alert, Monitor, MonitorRun
from loopline.store.database import Database, json_text
from loopline.store.schema import alerts, monitor_runs, monitors


def _finite(values: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: (None if v is None or not math.isfinite(v) else float(v)) for k, v in values.items()}


def _monitor(row: Any) -> Monitor:
    return Monitor(
        row.name,
        row.deployment,
        json.loads(row.spec),
        row.reference_blob,
        row.created_at,
        row.created_by,
        row.updated_at,
    )


def _alert(row: Any, monitor: str) -> Alert:
    return Alert(
        id=row.id,
        monitor=monitor,
        rule=row.rule,
        severity=row.severity,
        status=row.status,
        first_at=row.first_at,
        last_at=row.last_at,
        resolved_at=row.resolved_at,
        occurrences=row.occurrences,
        value=row.value,
        message=row.message,
        evidence=json.loads(row.evidence),
        notifications=json.loads(row.notifications),
    )


class SqlMonitorStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _id(self, conn: Connection, name: str) -> int:
        found = conn.execute(select(monitors.c.id).where(monitors.c.name == name)).scalar()
        if found is None:
            raise NotFound(f"monitor {name!r} does not exist (see `loopline monitor list`)")
        return int(found)

    def create(self, monitor: Monitor) -> Monitor:
        values = {
            "name": monitor.name,
            "deployment": monitor.deployment,
            "spec": json_text(monitor.spec),
            "reference_blob": monitor.reference_blob,
            "created_at": monitor.created_at,
            "created_by": monitor.created_by,
            "updated_at": monitor.updated_at,
        }
        try:
            self._db.write(lambda conn: conn.execute(monitors.insert().values(**values)))
        except IntegrityError:
            raise AlreadyExists(f"monitor {monitor.name!r} already exists") from None
        return self.get(monitor.name)

    def replace(self, monitor: Monitor) -> Monitor:
        """New spec and reference for an existing monitor; its runs and alerts stay."""

        def work(conn: Connection) -> None:
            conn.execute(
                update(monitors)
                .where(monitors.c.id == self._id(conn, monitor.name))
                .values(
                    deployment=monitor.deployment,
                    spec=json_text(monitor.spec),
                    reference_blob=monitor.reference_blob,
                    updated_at=monitor.updated_at,
                )
            )

        self._db.write(work)
        return self.get(monitor.name)

    def get(self, name: str) -> Monitor:
        def work(conn: Connection) -> Monitor:
            row = conn.execute(select(monitors).where(monitors.c.id == self._id(conn, name))).one()
            return _monitor(row)

        return self._db.read(work)

    def list_all(self) -> list[Monitor]:
        stmt = select(monitors).order_by(monitors.c.name)
        return self._db.read(lambda conn: [_monitor(r) for r in conn.execute(stmt)])

    # runs ----------------------------------------------------------------------------------

    def add_run(
        self,
        name: str,
        at: int,
        window: tuple[int | None, int | None],
        rows: int,
        values: Mapping[str, float | None],
        details: Mapping[str, Any],
    ) -> MonitorRun:
        def work(conn: Connection) -> int:
            monitor_id = self._id(conn, name)
            number = conn.execute(  # the row lock orders concurrent runs of one monitor
                update(monitors)
                .where(monitors.c.id == monitor_id)
                .values(last_run=monitors.c.last_run + 1)
                .returning(monitors.c.last_run)
            ).scalar_one()
            conn.execute(
                monitor_runs.insert().values(
                    monitor_id=monitor_id,
                    number=number,
                    at=at,
                    window_start=window[0],
                    window_end=window[1],
                    rows=rows,
                    values=json_text(_finite(values)),
                    details=json_text(details),
                )
            )
            return int(number)

        number = self._db.write(work)
        return MonitorRun(number, name, at, window[0], window[1], rows, _finite(values), dict(details))

    def runs(self, name: str, limit: int = 100, with_details: bool = False) -> list[MonitorRun]:
        """The newest `limit` runs, newest first."""

        def work(conn: Connection) -> list[MonitorRun]:
            rows = conn.execute(
                select(monitor_runs)
                .where(monitor_runs.c.monitor_id == self._id(conn, name))
                .order_by(monitor_runs.c.at.desc(), monitor_runs.c.number.desc())
                .limit(limit)
            )
            return [
                MonitorRun(
                    r.number,
                    name,
                    r.at,
                    r.window_start,
                    r.window_end,
                    r.rows,
                    json.loads(r.values),
                    json.loads(r.details) if with_details else {},
                )
                for r in rows
            ]

        return self._db.read(work)

    def run(self, name: str, number: int) -> MonitorRun:
        def work(conn: Connection) -> MonitorRun:
            r = conn.execute(
                select(monitor_runs).where(
                    monitor_runs.c.monitor_id == self._id(conn, name), monitor_runs.c.number == number
                )
            ).one_or_none()
            if r is None:
                raise NotFound(f"monitor {name!r} has no run {number}")
            return MonitorRun(
                r.number,
                name,
                r.at,
                r.window_start,
                r.window_end,
                r.rows,
                json.loads(r.values),
                json.loads(r.details),
            )

        return self._db.read(work)

    # alerts --------------------------------------------------------------------------------

    def open_alert(self, name: str, alert: Alert) -> tuple[Alert, bool]:
        """Open `alert`, or when its rule already has an open one, count one more occurrence
        on that one. Returns the alert and whether it is new."""
        key = f"{name}/{alert.rule}"  # monitor names hold no "/"

        def insert(conn: Connection) -> int:
            return int(
                conn.execute(
                    alerts.insert()
                    .values(
                        monitor_id=self._id(conn, name),
                        rule=alert.rule,
                        severity=alert.severity,
                        status="firing",
                        open_key=key,
                        first_at=alert.first_at,
                        last_at=alert.last_at,
                        occurrences=1,
                        value=alert.value,
                        message=alert.message,
                        evidence=json_text(alert.evidence),
                        notifications="[]",
                    )
                    .returning(alerts.c.id)
                ).scalar_one()
            )

        def again(conn: Connection) -> int | None:
            return conn.execute(
                update(alerts)
                .where(alerts.c.open_key == key)
                .values(
                    last_at=alert.last_at,
                    occurrences=alerts.c.occurrences + 1,
                    value=alert.value,
                    message=alert.message,
                    evidence=json_text(alert.evidence),
                )
                .returning(alerts.c.id)
            ).scalar()

        existing = self._db.write(again)
        if existing is not None:
            return self.alert(name, existing), False
        try:
            return self.alert(name, self._db.write(insert)), True
        except IntegrityError:  # another run opened it in between
            return self.alert(name, self._db.write(again) or 0), False

    def resolve_alert(self, name: str, rule: str, at: int) -> Alert | None:
        key = f"{name}/{rule}"

        def work(conn: Connection) -> int | None:
            return conn.execute(
                update(alerts)
                .where(alerts.c.open_key == key)
                .values(status="resolved", open_key=None, resolved_at=at)
                .returning(alerts.c.id)
            ).scalar()

        resolved = self._db.write(work)
        return None if resolved is None else self.alert(name, resolved)

    def record_notifications(self, name: str, alert_id: int, outcomes: list[dict[str, Any]]) -> None:
        def work(conn: Connection) -> None:
            current = conn.execute(select(alerts.c.notifications).where(alerts.c.id == alert_id)).scalar_one()
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id)
                .values(notifications=json_text(json.loads(current) + outcomes))
            )

        self._db.write(work)

    def alert(self, name: str, alert_id: int) -> Alert:
        def work(conn: Connection) -> Alert:
            row = conn.execute(
                select(alerts).where(alerts.c.id == alert_id, alerts.c.monitor_id == self._id(conn, name))
            ).one_or_none()
            if row is None:
                raise NotFound(f"monitor {name!r} has no alert {alert_id}")
            return _alert(row, name)

        return self._db.read(work)

    def alerts(self, name: str | None = None, status: str | None = None, limit: int = 200) -> list[Alert]:
        def work(conn: Connection) -> list[Alert]:
            stmt = select(alerts, monitors.c.name.label("monitor_name")).join_from(alerts, monitors)
            if name is not None:
                stmt = stmt.where(alerts.c.monitor_id == self._id(conn, name))
            if status is not None:
                stmt = stmt.where(alerts.c.status == status)
            stmt = stmt.order_by(alerts.c.last_at.desc(), alerts.c.id.desc()).limit(limit)
            return [_alert(r, r.monitor_name) for r in conn.execute(stmt)]

        return self._db.read(work)
