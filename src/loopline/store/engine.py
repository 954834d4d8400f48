"""Engines for the two supported databases, configured for many concurrent writers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from loopline.core.errors import InvalidInput

SQLITE_BUSY_TIMEOUT_S = 60.0
READ_ONLY = "loopline_read_only"  # execution option: begin a deferred (reading) SQLite transaction


def parse_store_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput(
            f"store URI {url!r} is not a database URL; use sqlite:///path/to/loopline.db "
            "or postgresql+psycopg://user@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidInput("an in-memory SQLite store cannot be shared; give a file path")
        return parsed
    raise InvalidInput(f"store URI {parsed.render_as_string()!r}: use sqlite or postgresql")


def create_store_engine(url: str) -> Engine:
    parsed = parse_store_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(parsed, pool_pre_ping=True, pool_size=4, max_overflow=8)


def _sqlite_engine(url: URL) -> Engine:
    assert url.database is not None
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    # pysqlite begins transactions lazily and commits around DDL on its own; take control of
    # BEGIN so that writes start with BEGIN IMMEDIATE (the write lock is taken up front,
    # so two writers queue on the busy timeout instead of failing on lock upgrade).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL
        cursor.execute("PRAGMA case_sensitive_like = ON")  # LIKE as on PostgreSQL; ILIKE ignores case
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def redacted(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"
