from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from loopline.core.entities import Metric
from loopline.core.errors import AlreadyExists, SchemaTooNew
from loopline.store import open_metadata_store
from loopline.store.database import Database
from loopline.store.engine import create_store_engine
from loopline.store.metric_series import rollup_rows
from loopline.store.migrate import _MIGRATIONS, HEAD_REVISION, VERSION_TABLE, schema_revision, upgrade
from loopline.store.schema import metadata
from tests.conftest import BACKENDS, Databases


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, databases: Databases, tmp_path: Path) -> Iterator[str]:
    """Here, unlike elsewhere, a database with no schema at all."""
    with databases.new(request.param, tmp_path, migrated=False) as url:
        yield url


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    assert ScriptDirectory(str(_MIGRATIONS)).get_current_head() == HEAD_REVISION


# SQLite's reflection cannot read back an expression index (users' lower(name)); PostgreSQL's can.
@pytest.mark.filterwarnings("ignore:.*expression-based index:UserWarning", "ignore:.*expression-based index")
def test_a_new_database_is_migrated_to_exactly_the_declared_schema(store_url: str) -> None:
    store = open_metadata_store(store_url)
    try:
        with store.db.engine.connect() as conn:
            assert schema_revision(conn) == HEAD_REVISION
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
    finally:
        store.close()


def test_reopening_and_upgrading_again_change_nothing(store_url: str) -> None:
    open_metadata_store(store_url).close()
    db = Database(create_store_engine(store_url))
    try:
        assert upgrade(db) == (HEAD_REVISION, HEAD_REVISION)
    finally:
        db.dispose()


def test_a_database_from_a_newer_version_is_refused_and_left_alone(store_url: str) -> None:
    open_metadata_store(store_url).close()
    db = Database(create_store_engine(store_url))
    db.write(lambda conn: conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")))
    with pytest.raises(SchemaTooNew, match=r"newer loopline \(schema revision '9999'.*Upgrade loopline"):
        open_metadata_store(store_url)
    assert db.read(schema_revision) == "9999"
    db.dispose()


def _open_and_report(url: str, queue: multiprocessing.Queue[object]) -> None:
    try:
        store = open_metadata_store(url)
        store_id = store.db.read(lambda conn: conn.execute(text("SELECT store_id FROM store_info")).all())
        queue.put(store_id)
        store.close()
    except BaseException as exc:  # reported to the parent, which fails the test
        queue.put(repr(exc))


@pytest.mark.slow
def test_eight_processes_opening_one_new_database_migrate_it_once(store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[object] = ctx.Queue()
    workers = [ctx.Process(target=_open_and_report, args=(store_url, queue)) for _ in range(8)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    # every process saw the same single store_info row: the initial migration ran once
    assert all(isinstance(result, list) and len(result) == 1 for result in results), results
    assert len({result[0] for result in results}) == 1  # type: ignore[index]


def _migrated_to(store_url: str, revision: str) -> Database:
    """A new database migrated only as far as `revision`."""
    from alembic import command
    from alembic.config import Config

    db = Database(create_store_engine(store_url))
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["version_table"] = VERSION_TABLE
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return db


def test_upgrading_a_database_of_the_first_schema_keeps_its_runs(store_url: str) -> None:
    db = _migrated_to(store_url, "0001")
    db.write(
        lambda conn: conn.execute(
            text("INSERT INTO projects (id, name, description, created_at) VALUES (1, 'default', '', 1)")
        )
    )
    db.write(
        lambda conn: conn.execute(
            text(
                "INSERT INTO experiments (id, project_id, name, description, created_at, created_by)"
                " VALUES (1, 1, 'old', '', 1, 'me')"
            )
        )
    )
    db.dispose()
    store = open_metadata_store(store_url)  # migrates 0001 -> head on open
    try:
        assert store.db.read(schema_revision) == HEAD_REVISION
        assert [e.name for e in store.experiments.list_experiments()] == ["old"]
        assert store.registry.list_models() == []
    finally:
        store.close()


def test_models_registered_before_projects_join_the_default_project(store_url: str) -> None:
    db = _migrated_to(store_url, "0007")
    db.write(
        lambda conn: conn.execute(
            text(
                "INSERT INTO registered_models (name, display_name, description, last_version, created_at,"
                " created_by) VALUES ('churn', 'Churn', '', 0, 1, 'me')"
            )
        )
    )
    db.dispose()
    store = open_metadata_store(store_url)  # 0007 -> head: the model's project is `default`
    try:
        assert [(m.name, m.project) for m in store.registry.list_models()] == [("churn", "default")]
        assert [p.name for p in store.experiments.list_projects()] == ["default"]
    finally:
        store.close()


def test_user_names_that_differ_only_in_case_stop_the_upgrade_with_their_names(store_url: str) -> None:
    db = _migrated_to(store_url, "0008")
    insert = text("INSERT INTO users (name, is_admin, disabled, created_at) VALUES (:n, false, false, 1)")
    db.write(lambda conn: [conn.execute(insert, {"n": n}) for n in ("alice", "ALICE", "bob")])
    db.dispose()
    with pytest.raises(Exception, match="differ only in case: alice; rename"):
        open_metadata_store(store_url)
    db = Database(create_store_engine(store_url))
    db.write(lambda conn: conn.execute(text("UPDATE users SET name = 'alice2' WHERE name = 'ALICE'")))
    db.dispose()
    store = open_metadata_store(store_url)
    try:
        with pytest.raises(AlreadyExists):  # the database itself now refuses a twin
            store.access.add_user("Bob", False, 2)
    finally:
        store.close()


def test_monitor_runs_stored_before_numbering_are_numbered_per_monitor(store_url: str) -> None:
    db = _migrated_to(store_url, "0009")
    monitor = text(
        "INSERT INTO monitors (name, deployment, spec, reference_blob, created_at, created_by, updated_at) "
        "VALUES (:n, 'd', '{}', 'x', 1, 'me', 1)"
    )
    run = text(
        'INSERT INTO monitor_runs (monitor_id, at, rows, "values", details) '
        "SELECT id, :at, 0, '{}', '{}' FROM monitors WHERE name = :n"
    )
    db.write(lambda conn: [conn.execute(monitor, {"n": n}) for n in ("old", "new")])
    db.write(
        lambda conn: [
            conn.execute(run, {"n": n, "at": at}) for at, n in enumerate(["old", "old", "new", "old"])
        ]
    )
    db.dispose()
    store = open_metadata_store(store_url)  # 0009 -> head
    try:
        assert [r.id for r in store.monitors.runs("old")] == [3, 2, 1]
        assert [r.id for r in store.monitors.runs("new")] == [1]
        added = store.monitors.add_run("new", 10, (None, None), 0, {}, {})
        assert added.id == 2 and store.monitors.run("new", 2).at == 10
    finally:
        store.close()


def test_histories_stored_before_rollups_are_summed_up_as_the_writer_would(store_url: str) -> None:
    db = _migrated_to(store_url, "0010")
    values = [(1, "loss", None if s == 5 else float(s % 97), s, 1000 + s) for s in range(-3, 3000)]
    values.append((1, "loss", 42.0, 2999, 999))  # an older value at the last step
    insert = text("INSERT INTO metrics (run_pk, key, value, step, timestamp) VALUES (:r, :k, :v, :s, :t)")
    db.write(lambda conn: conn.execute(insert, [dict(zip("rkvst", row, strict=True)) for row in values]))
    db.dispose()
    store = open_metadata_store(store_url)  # 0010 -> head
    try:
        stored = store.db.read(
            lambda conn: conn.execute(text("SELECT * FROM metric_rollups")).mappings().all()
        )
        batch = [Metric(k, math.nan if v is None else v, s, t) for _, k, v, s, t in values]
        expected = rollup_rows(1, batch)
        assert sorted((dict(r) for r in stored), key=lambda r: r["bucket"]) == sorted(
            expected, key=lambda r: r["bucket"]
        )
    finally:
        store.close()
