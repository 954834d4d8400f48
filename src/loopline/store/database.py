"""One database: an engine plus read and write transactions that survive contention."""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import DBAPIError

from loopline.core.errors import StoreError
from loopline.store.engine import READ_ONLY

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")

_MAX_ATTEMPTS = 12
_RETRY_SQLSTATES = {"40001", "40P01"}  # PostgreSQL serialization failure, deadlock


# The transaction a unit of work opened, with its engine: store calls inside it join it.
_UNIT: ContextVar[tuple[Engine, Connection] | None] = ContextVar("loopline_unit_of_work", default=None)


def _forget_pool(engine_ref: weakref.ref[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


def _is_transient(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message or "busy" in message


def json_text(value: Any) -> str:
    """How JSON columns are written: keys sorted, anything else as its str()."""
    return json.dumps(value, sort_keys=True, default=str)


class Database:
    """Runs each unit of work in its own transaction; writes are retried on lock contention.

    A write (or read) made while another write of the same database runs in this thread or
    task joins that write's transaction: a service can wrap a change and its audit entry in
    one `write`, and the role stores it calls commit or roll back together."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # On PostgreSQL reads run without BEGIN and ROLLBACK: under READ COMMITTED each statement
        # takes its own snapshot inside a transaction too, so the two round trips bought nothing.
        # SQLite's read transaction does hold one snapshot (WAL) across its statements.
        reads = {"isolation_level": "AUTOCOMMIT"} if self.dialect == "postgresql" else {READ_ONLY: True}
        self._read_engine = engine.execution_options(**reads)
        # A forked child must not touch the parent's pooled connections (SQLAlchemy's advice).
        os.register_at_fork(after_in_child=functools.partial(_forget_pool, weakref.ref(engine)))

    def _joined(self) -> Connection | None:
        unit = _UNIT.get()
        return unit[1] if unit is not None and unit[0] is self.engine else None

    def in_write(self) -> bool:
        """Whether a write of this database is under way in this thread or task."""
        return self._joined() is not None

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a reading connection (or in the write this call is part of, which
        sees that write's own changes)."""
        joined = self._joined()
        if joined is not None:
            return work(joined)
        with self._read_engine.connect() as conn:
            return work(conn)

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction; re-run it whole if the database was busy.

        Inside another write it joins that one's transaction, whose retry re-runs it, as a
        savepoint: a store that catches its own failure (a lost insert race, say) leaves the
        enclosing transaction usable."""
        joined = self._joined()
        if joined is not None:
            with joined.begin_nested():
                return work(joined)
        for attempt in itertools.count(1):
            try:
                with self.engine.begin() as conn:
                    token = _UNIT.set((self.engine, conn))
                    try:
                        return work(conn)
                    finally:
                        _UNIT.reset(token)
            except DBAPIError as exc:
                if not _is_transient(exc):
                    raise
                if attempt == _MAX_ATTEMPTS:
                    raise StoreError(
                        f"the database stayed busy through {attempt} attempts: {exc.orig}"
                    ) from exc
                time.sleep(min(2.0, 0.01 * 2**attempt) * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    def insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that supports ON CONFLICT on both backends."""
        # Imported here: each dialect's module costs tens of milliseconds to import, and a
        # command needs one of them at most.
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    def dispose(self) -> None:
        self.engine.dispose()
