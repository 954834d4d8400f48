"""Online feature values: each entity's newest values per view, for serving, in SQLite (the
embedded default), Redis or PostgreSQL (scale-out).

A value is written only if it is newer (event time, then created time) than the one held, so
writing the same rows twice, or an older batch after a newer one, changes nothing: that makes
materialization safe to re-run from its last watermark after a kill.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from loopline.core.errors import InvalidInput
from loopline.store.engine import parse_store_url

Key = tuple[Any, ...]
Row = tuple[Key, int, int, dict[str, Any]]  # (entity key, event time µs, created time µs, values)


def encode_key(key: Key) -> str:
    """One string per entity key, the same for the same values (1 and 1.0 differ)."""
    return json.dumps(list(key), separators=(",", ":"), default=str)


class OnlineStore(Protocol):
    """Where materialization writes and lookups read."""

    def write(self, view: str, rows: Sequence[Row]) -> None: ...

    def read(self, view: str, keys: Sequence[Key]) -> list[tuple[int, dict[str, Any]] | None]: ...

    def watermark(self, view: str) -> int | None: ...

    def newest(self, view: str) -> int | None:
        """The newest event time (µs) written for `view`, None before its first write."""

    def set_watermark(self, view: str, at_us: int) -> None: ...

    def close(self) -> None: ...


class SqliteOnlineStore:
    """One table of (view, key) -> newest values, in a SQLite file (WAL, one writer)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS online_values (
                    view TEXT NOT NULL, entity_key TEXT NOT NULL, event_us INTEGER NOT NULL,
                    created_us INTEGER NOT NULL, feature_values TEXT NOT NULL,
                    PRIMARY KEY (view, entity_key)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS online_watermarks (view TEXT PRIMARY KEY, at_us INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS online_newest (view TEXT PRIMARY KEY, event_us INTEGER NOT NULL);
                """
            )

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, check_same_thread=True)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
        with conn:
            yield conn

    def write(self, view: str, rows: Sequence[Row]) -> None:
        with self._connection() as conn:
            conn.executemany(
                """INSERT INTO online_values VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (view, entity_key) DO UPDATE SET event_us = excluded.event_us,
                       created_us = excluded.created_us, feature_values = excluded.feature_values
                   WHERE (excluded.event_us, excluded.created_us) > (event_us, created_us)""",
                [(view, encode_key(k), e, c, json.dumps(v, default=str)) for k, e, c, v in rows],
            )
            if rows:
                conn.execute(
                    "INSERT INTO online_newest VALUES (?, ?) "
                    "ON CONFLICT (view) DO UPDATE SET event_us = max(event_us, excluded.event_us)",
                    [view, max(event for _, event, _, _ in rows)],
                )

    def read(self, view: str, keys: Sequence[Key]) -> list[tuple[int, dict[str, Any]] | None]:
        encoded = [encode_key(k) for k in keys]
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        with self._connection() as conn:
            for start in range(0, len(encoded), 500):
                chunk = encoded[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, event, values in conn.execute(
                    f"SELECT entity_key, event_us, feature_values FROM online_values "
                    f"WHERE view = ? AND entity_key IN ({marks})",
                    [view, *chunk],
                ):
                    found[key] = (event, json.loads(values))
        return [found.get(k) for k in encoded]

    def watermark(self, view: str) -> int | None:
        with self._connection() as conn:
            row = conn.execute("SELECT at_us FROM online_watermarks WHERE view = ?", [view]).fetchone()
        return None if row is None else int(row[0])

    def newest(self, view: str) -> int | None:
        with self._connection() as conn:
            row = conn.execute("SELECT event_us FROM online_newest WHERE view = ?", [view]).fetchone()
        return None if row is None else int(row[0])

    def set_watermark(self, view: str, at_us: int) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO online_watermarks VALUES (?, ?) "
                "ON CONFLICT (view) DO UPDATE SET at_us = excluded.at_us",
                [view, at_us],
            )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresOnlineStore:
    """The same table as SQLite's, in PostgreSQL (psycopg 3): for several serving replicas."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self._engine = sa.create_engine(parse_store_url(url))  # postgresql:// through psycopg 3
        self._text = sa.text
        with self._engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE IF NOT EXISTS online_values (view TEXT NOT NULL, entity_key TEXT NOT NULL, "
                    "event_us BIGINT NOT NULL, created_us BIGINT NOT NULL, feature_values TEXT NOT NULL, "
                    "PRIMARY KEY (view, entity_key))"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TABLE IF NOT EXISTS online_watermarks "
                    "(view TEXT PRIMARY KEY, at_us BIGINT NOT NULL)"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TABLE IF NOT EXISTS online_newest "
                    "(view TEXT PRIMARY KEY, event_us BIGINT NOT NULL)"
                )
            )

    def write(self, view: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        statement = self._text(
            "INSERT INTO online_values VALUES (:view, :key, :event, :created, :values) "
            "ON CONFLICT (view, entity_key) DO UPDATE SET event_us = excluded.event_us, "
            "created_us = excluded.created_us, feature_values = excluded.feature_values "
            "WHERE (excluded.event_us, excluded.created_us) "
            "> (online_values.event_us, online_values.created_us)"
        )
        params = [
            {
                "view": view,
                "key": encode_key(k),
                "event": e,
                "created": c,
                "values": json.dumps(v, default=str),
            }
            for k, e, c, v in rows
        ]
        newest = self._text(
            "INSERT INTO online_newest VALUES (:view, :event) ON CONFLICT (view) "
            "DO UPDATE SET event_us = GREATEST(online_newest.event_us, excluded.event_us)"
        )
        with self._engine.begin() as conn:
            conn.execute(statement, params)
            conn.execute(newest, {"view": view, "event": max(event for _, event, _, _ in rows)})

    def read(self, view: str, keys: Sequence[Key]) -> list[tuple[int, dict[str, Any]] | None]:
        encoded = [encode_key(k) for k in keys]
        statement = self._text(
            "SELECT entity_key, event_us, feature_values FROM online_values "
            "WHERE view = :view AND entity_key = ANY(:keys)"
        )
        with self._engine.connect() as conn:
            rows = conn.execute(statement, {"view": view, "keys": encoded}).all()
        found = {key: (int(event), json.loads(values)) for key, event, values in rows}
        return [found.get(k) for k in encoded]

    def watermark(self, view: str) -> int | None:
        statement = self._text("SELECT at_us FROM online_watermarks WHERE view = :view")
        with self._engine.connect() as conn:
            held = conn.execute(statement, {"view": view}).scalar()
        return None if held is None else int(held)

    def newest(self, view: str) -> int | None:
        statement = self._text("SELECT event_us FROM online_newest WHERE view = :view")
        with self._engine.connect() as conn:
            held = conn.execute(statement, {"view": view}).scalar()
        return None if held is None else int(held)

    def set_watermark(self, view: str, at_us: int) -> None:
        statement = self._text(
            "INSERT INTO online_watermarks VALUES (:view, :at) "
            "ON CONFLICT (view) DO UPDATE SET at_us = excluded.at_us"
        )
        with self._engine.begin() as conn:
            conn.execute(statement, {"view": view, "at": at_us})

    def close(self) -> None:
        self._engine.dispose()


# Writes a value only if newer than the one held: KEYS[1] the hash; ARGV: event, created, values.
_NEWER = """
local held = redis.call('HMGET', KEYS[1], 'e', 'c')
local e, c = tonumber(ARGV[1]), tonumber(ARGV[2])
if held[1] and (tonumber(held[1]) > e or (tonumber(held[1]) == e and tonumber(held[2]) >= c)) then
  return 0
end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'c', ARGV[2], 'v', ARGV[3])
return 1
"""
# Raises the view's newest event time: KEYS[1] its key; ARGV[1] a batch's newest.
_RAISE = """
local held = redis.call('GET', KEYS[1])
if not held or tonumber(held) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
"""


class RedisOnlineStore:
    """A hash per (view, key) in Redis, written newer-only by a server-side script."""

    def __init__(self, url: str, prefix: str = "loopline:features") -> None:
        try:
            import redis
        except ImportError:
            raise InvalidInput("a Redis online store needs redis-py: pip install 'loopline[redis]'") from None
        self._client = redis.Redis.from_url(url)
        self._prefix = prefix
        self._newer = self._client.register_script(_NEWER)
        self._raise = self._client.register_script(_RAISE)

    def _key(self, view: str, key: Key) -> str:
        return f"{self._prefix}:{view}:{encode_key(key)}"

    def write(self, view: str, rows: Sequence[Row]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, event, created, values in rows:
            self._newer(
                keys=[self._key(view, key)],
                args=[event, created, json.dumps(values, default=str)],
                client=pipe,
            )
        if rows:
            newest = max(event for _, event, _, _ in rows)
            self._raise(keys=[f"{self._prefix}:{view}:__newest"], args=[newest], client=pipe)
        pipe.execute()

    def read(self, view: str, keys: Sequence[Key]) -> list[tuple[int, dict[str, Any]] | None]:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self._key(view, key), "e", "v")
        found: list[tuple[int, dict[str, Any]] | None] = []
        for event, values in pipe.execute():
            found.append(None if event is None else (int(event), json.loads(values)))
        return found

    def watermark(self, view: str) -> int | None:
        held = self._client.get(f"{self._prefix}:{view}:__watermark")
        return None if held is None else int(held)

    def newest(self, view: str) -> int | None:
        held = self._client.get(f"{self._prefix}:{view}:__newest")
        return None if held is None else int(held)

    def set_watermark(self, view: str, at_us: int) -> None:
        self._client.set(f"{self._prefix}:{view}:__watermark", at_us)

    def close(self) -> None:
        self._client.close()


def open_online_store(url: str | None, default_folder: Path | None) -> OnlineStore:
    """`sqlite:///PATH` or `redis://HOST:PORT`; without a URL, SQLite in `default_folder`."""
    if url is None:
        if default_folder is None:
            raise InvalidInput(
                "name the online store (LOOPLINE_ONLINE_STORE): sqlite:///PATH or redis://HOST"
            )
        return SqliteOnlineStore(default_folder / "online-features.db")
    if url.startswith("sqlite:///"):
        return SqliteOnlineStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisOnlineStore(url)
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        return PostgresOnlineStore(url)
    raise InvalidInput(f"online store {url!r:.80} is none of sqlite:///PATH, redis://HOST, postgresql://...")
