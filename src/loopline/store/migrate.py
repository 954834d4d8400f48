"""Schema migrations (Alembic), applied when a store opens.

Opening an up-to-date database costs one query. Otherwise one process at a time migrates,
under a file lock (SQLite) or an advisory lock (PostgreSQL), and every other process that
opened the same new database meanwhile finds it migrated when its turn comes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, inspect, text

from loopline.core.errors import SchemaTooNew
from loopline.store.database import Database

HEAD_REVISION = "0014"  # the newest migration in migrations/versions; a test keeps them in step
VERSION_TABLE = "loopline_alembic_version"
_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK_TIMEOUT_S = 300


def schema_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one_or_none()


def ensure_schema(db: Database) -> None:
    """Bring the database to this version's schema, or refuse one from a newer version."""
    if db.read(schema_revision) == HEAD_REVISION:
        return
    upgrade(db)


def upgrade(db: Database) -> tuple[str | None, str]:
    """Apply pending migrations; returns (revision before, revision after)."""
    with _migration_lock(db):
        if db.dialect == "sqlite":
            _enable_wal(db)
        with db.engine.begin() as conn:
            if db.dialect == "postgresql":
                # Serialises migrations per schema even across hosts sharing the database.
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.loopline'))"))
            before = schema_revision(conn)
            _check_known(db, before)
            if before != HEAD_REVISION:
                _run_alembic(conn)
        return before, HEAD_REVISION


def _check_known(db: Database, revision: str | None) -> None:
    if revision is None:
        return
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        known = ScriptDirectory(str(_MIGRATIONS)).get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        url = db.engine.url.render_as_string(hide_password=True)
        raise SchemaTooNew(
            f"the database {url} was migrated by a newer loopline (schema revision {revision!r}; "
            f"this version knows up to {HEAD_REVISION!r}). Upgrade loopline to open it."
        )


def _run_alembic(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    config.attributes["version_table"] = VERSION_TABLE
    command.upgrade(config, "head")


@contextlib.contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    if db.dialect != "sqlite":
        yield  # PostgreSQL takes its advisory lock inside the migration transaction
        return
    from filelock import FileLock

    database = db.engine.url.database
    assert database is not None
    with FileLock(str(Path(database).expanduser()) + ".lock", timeout=_MIGRATION_LOCK_TIMEOUT_S):
        yield


def _enable_wal(db: Database) -> None:
    """WAL lets readers work while one process writes; it is a property of the file."""
    raw = db.engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA journal_mode = WAL")  # type: ignore[union-attr]
    finally:
        raw.close()
