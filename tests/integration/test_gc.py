"""Retention policies and `loopline gc`: what is removed, what is kept, who may, and that
nothing referenced is ever removed while others write."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import Table, select, update

from loopline.artifacts import BlobStore
from loopline.artifacts.tables import TableArea
from loopline.automation.worker import Worker
from loopline.client.services import RemoteServices
from loopline.core.access import Role
from loopline.core.automation import JobKind, JobStatus
from loopline.core.clock import now_ms
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput, NotFound, PermissionDenied
from loopline.core.lifecycle import DEFAULT_BLOB_GRACE_HOURS, RetentionPolicy
from loopline.models import save_model
from loopline.predictions.log import DAY_MS, ERRORS, FEEDBACK, PREDICTIONS, day_partition
from loopline.store import MetadataStore
from loopline.store import schema as tables_of_the_store
from loopline.store.retention import BLOB_COLUMNS, BLOB_JSON_COLUMNS, NOT_BLOB_COLUMNS
from loopline.store.schema import artifacts, runs
from loopline.wiring.backends import Backends, local_owner
from loopline.wiring.local import LocalServices
from tests.conftest import Invoke, grant
from tests.integration.api_helpers import sqlite_team

DAY_S = 86_400
OLD = time.time() - 30 * DAY_S  # a file time long past any grace


@pytest.fixture
def owner(store: MetadataStore, blobs: BlobStore) -> LocalServices:
    return Backends(store, blobs).services(local_owner())


def _age_file(blobs: BlobStore, digest: str, at: float = OLD) -> None:
    os.utime(blobs._path(digest), (at, at))


def _deleted_long_ago(store: MetadataStore, run_id: str, days: float) -> None:
    at = now_ms() - int(days * DAY_MS)
    store.db.write(lambda conn: conn.execute(update(runs).where(runs.c.id == run_id).values(deleted_at=at)))


def _run_with(owner: LocalServices, name: str, *files: tuple[str, bytes]) -> str:
    run = owner.tracking.start_run("gc", run_name=name)
    for artifact, data in files:
        owner.tracking.log_artifact_bytes(run.id, artifact, data)
    return run.id


def _digest(owner: LocalServices, run_id: str, name: str) -> str:
    return owner.tracking._artifact(run_id, name).digest


# --- the policy -------------------------------------------------------------------------


def test_without_a_policy_runs_and_logs_are_kept_and_blobs_have_a_grace(owner: LocalServices) -> None:
    policy = owner.storage.retention()
    assert policy == RetentionPolicy(None, None, DEFAULT_BLOB_GRACE_HOURS, None, None)


def test_setting_the_policy_is_on_the_audit_trail_with_the_one_before(owner: LocalServices) -> None:
    set_ = owner.storage.set_retention(
        deleted_runs_days=30, prediction_log_days=90, unreferenced_blob_hours=12, reason="quota"
    )
    assert (set_.deleted_runs_days, set_.prediction_log_days, set_.unreferenced_blob_hours) == (30, 90, 12)
    assert set_.updated_by == owner.principal.name and owner.storage.retention() == set_
    owner.storage.set_retention(deleted_runs_days=None, prediction_log_days=90, unreferenced_blob_hours=12)
    entries = owner.audit.entries(action="storage.retention")
    assert [e.after["deleted_runs_days"] for e in entries] == [None, 30]
    assert entries[1].before["deleted_runs_days"] is None and entries[1].reason == "quota"
    assert entries[0].before["deleted_runs_days"] == 30


@pytest.mark.parametrize(
    ("ages", "message"),
    [
        ({"deleted_runs_days": -1}, "deleted_runs_days must be a positive number of days"),
        ({"deleted_runs_days": 0}, "deleted_runs_days must be a positive number of days"),
        ({"prediction_log_days": float("nan")}, "prediction_log_days must be a positive number"),
        ({"prediction_log_days": float("inf")}, "prediction_log_days must be a positive number"),
        ({"deleted_runs_days": 10**9}, "at most 36,500"),
        ({"unreferenced_blob_hours": 0}, "unreferenced_blob_hours must be a positive number of hours"),
        ({"unreferenced_blob_hours": None}, "unreferenced_blob_hours needs a value"),
    ],
)
def test_policy_values_are_checked(owner: LocalServices, ages: dict[str, float | None], message: str) -> None:
    given: dict[str, float | None] = {
        "deleted_runs_days": 30, "prediction_log_days": None, "unreferenced_blob_hours": 24, **ages
    }  # fmt: skip
    with pytest.raises(InvalidInput, match=message):
        owner.storage.set_retention(**given)  # type: ignore[arg-type]
    assert owner.storage.retention().updated_at is None  # nothing was stored
    assert owner.audit.entries(action="storage.") == []


def test_only_administrators_change_the_policy_or_collect(store: MetadataStore, blobs: BlobStore) -> None:
    grant(store, "default", maya=Role.OWNER)
    maya = Backends(store, blobs).services(Principal("maya"))
    assert maya.storage.retention().unreferenced_blob_hours == DEFAULT_BLOB_GRACE_HOURS  # reading is fine
    with pytest.raises(PermissionDenied, match="only an administrator may change the retention policy"):
        maya.storage.set_retention(deleted_runs_days=1, prediction_log_days=1, unreferenced_blob_hours=1)
    for dry_run in (False, True):
        with pytest.raises(PermissionDenied, match="only an administrator"):
            maya.storage.gc(dry_run=dry_run)
    with pytest.raises(PermissionDenied, match="only an administrator may schedule or queue gc"):
        maya.automation.create_schedule("nightly-gc", "0 3 * * *", JobKind.GC, "storage")
    with pytest.raises(PermissionDenied, match="only an administrator may schedule or queue gc"):
        maya.automation.enqueue(JobKind.GC, "storage")


def test_over_http_administrators_collect_and_others_are_refused(tmp_path: Path) -> None:
    with sqlite_team(tmp_path) as team:
        admin = RemoteServices(team.connection("admin"))
        policy = admin.storage.set_retention(
            deleted_runs_days=7, prediction_log_days=None, unreferenced_blob_hours=48, reason="over http"
        )
        assert admin.storage.retention() == policy and policy.updated_by == "admin"
        report = admin.storage.gc(dry_run=True)
        assert report.dry_run and report.policy == policy
        with pytest.raises(InvalidInput, match="prediction_log_days must be a positive number"):
            admin.storage.set_retention(
                deleted_runs_days=7, prediction_log_days=-3, unreferenced_blob_hours=1
            )
        olga = RemoteServices(team.connection("olga"))  # owner of the default project, not an administrator
        assert olga.storage.retention() == policy
        with pytest.raises(PermissionDenied, match="only an administrator"):
            olga.storage.gc()
        with team.client("maya") as client:
            refused = client.put(
                "/api/v1/storage/retention",
                json={"deleted_runs_days": 1, "prediction_log_days": 1, "unreferenced_blob_hours": 1},
            )
            assert refused.status_code == 403 and "administrator" in refused.json()["error"]["message"]
        with team.client("admin") as client:
            bad = client.put(
                "/api/v1/storage/retention",
                json={"deleted_runs_days": "soon", "prediction_log_days": None, "unreferenced_blob_hours": 1},
            )
            assert 400 <= bad.status_code < 500
        gc_entries = admin.audit.entries(action="storage.")
        assert [e.action for e in gc_entries] == ["storage.retention"]  # a dry run is not recorded


# --- what gc removes --------------------------------------------------------------------


def test_runs_deleted_long_ago_are_purged_with_their_artifacts(
    owner: LocalServices, store: MetadataStore, blobs: BlobStore, tmp_path: Path
) -> None:
    shared = b"bytes two runs logged"
    old = _run_with(owner, "old", ("only-mine.txt", b"only the old run"), ("shared.txt", shared))
    owner.tracking.log_batch(old, params={"lr": "0.1"})
    recent = _run_with(owner, "recent", ("recent.txt", b"deleted yesterday"))
    registered = _run_with(owner, "registered", ("notes.txt", b"the model's run"))
    model_dir = tmp_path / "model"
    save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), model_dir)
    owner.registry.register("churn", model_dir, run_id=registered)
    live = _run_with(owner, "live", ("shared.txt", shared))  # the newest run: not deleted
    for run_id, days in ((old, 40), (recent, 1), (registered, 40)):
        owner.tracking.delete_run(run_id)
        _deleted_long_ago(store, run_id, days)
    mine, both = _digest(owner, old, "only-mine.txt"), _digest(owner, old, "shared.txt")
    for stored in blobs.stored():
        _age_file(blobs, stored.digest)
    owner.storage.set_retention(deleted_runs_days=30, prediction_log_days=None, unreferenced_blob_hours=1)

    preview = owner.storage.gc(dry_run=True)
    assert preview.purged_runs == [old] and preview.artifact_rows == 2
    assert [(k.run_id, k.reason) for k in preview.kept_runs] == [
        (registered, "a registered model version came from it")
    ]
    assert [b.digest for b in preview.blobs] == [mine]
    assert owner.tracking.get_run(old).deleted and blobs.exists(mine)  # a dry run removes nothing

    report = owner.storage.gc()
    assert (report.purged_runs, report.artifact_rows, report.kept_runs) == (
        preview.purged_runs, preview.artifact_rows, preview.kept_runs
    )  # fmt: skip
    assert [b.digest for b in report.blobs] == [mine] and report.blob_bytes == len(b"only the old run")
    with pytest.raises(NotFound):
        owner.tracking.get_run(old)
    assert (
        store.db.read(lambda c: c.execute(select(artifacts.c.name).where(artifacts.c.digest == mine)).all())
        == []
    )
    assert not blobs.exists(mine) and blobs.read(both, "shared.txt") == shared  # still the live run's
    for kept in (recent, registered, live):
        assert owner.tracking.get_run(kept).id == kept
    assert owner.tracking.read_artifact(registered, "notes.txt") == b"the model's run"
    assert owner.registry.get_version("churn", 1).run_id == registered
    entries = {e.action: e for e in owner.audit.entries(action="storage.")}
    assert entries["storage.purge_runs"].before == {"runs": [old]}
    assert entries["storage.gc"].after["runs"] == 1 and entries["storage.gc"].after["blobs"] == 1
    assert owner.audit.verify().intact
    again = owner.storage.gc()  # nothing left to do: not on the trail
    assert not again.removed_anything and len(owner.audit.entries(action="storage.gc")) == 1


def test_a_deleted_parent_stays_while_a_child_run_is_kept(owner: LocalServices, store: MetadataStore) -> None:
    parent = owner.tracking.start_run("gc", run_name="parent")
    child = owner.tracking.start_run("gc", run_name="child", parent_id=parent.id)
    owner.tracking.start_run("gc", run_name="newest")
    owner.tracking.delete_run(parent.id)
    _deleted_long_ago(store, parent.id, 40)
    owner.storage.set_retention(deleted_runs_days=30, prediction_log_days=None, unreferenced_blob_hours=1)
    report = owner.storage.gc()
    assert report.purged_runs == [] and report.kept_runs[0].reason == "it has child runs that are kept"
    owner.tracking.delete_run(child.id)
    _deleted_long_ago(store, child.id, 40)
    assert sorted(owner.storage.gc().purged_runs) == sorted([parent.id, child.id])


def _log_day(area: TableArea, table: str, deployment: str, day: int) -> None:
    area.append(table, [("deployment", deployment), ("date", day_partition(day))], pa.table({"x": [1, 2, 3]}))


def test_prediction_log_days_past_the_policy_are_removed(owner: LocalServices) -> None:
    area = owner.backends.tables
    today = now_ms() // DAY_MS
    for table in (PREDICTIONS, FEEDBACK, ERRORS):
        for day in (today - 40, today - 9, today - 1, today):
            _log_day(area, table, "churn-prod", day)
    _log_day(area, PREDICTIONS, "fraud", today - 100)
    owner.storage.set_retention(deleted_runs_days=None, prediction_log_days=7.5, unreferenced_blob_hours=24)

    preview = owner.storage.gc(dry_run=True)
    expected = sorted(
        [
            (t, "churn-prod", day_partition(d))
            for t in (PREDICTIONS, FEEDBACK, ERRORS)
            for d in (today - 40, today - 9)
        ]
        + [(PREDICTIONS, "fraud", day_partition(today - 100))]
    )
    assert sorted((p.table, p.deployment, p.date) for p in preview.partitions) == expected
    assert all(p.files == 1 and p.bytes > 0 for p in preview.partitions)
    assert len(area.files(PREDICTIONS)) == 5  # untouched

    report = owner.storage.gc()
    assert sorted((p.table, p.deployment, p.date) for p in report.partitions) == expected
    for table in (PREDICTIONS, FEEDBACK, ERRORS):
        left = sorted(path.split("date=")[1][:10] for path in area.files(table))
        assert left == [day_partition(today - 1), day_partition(today)]
    assert owner.audit.entries(action="storage.gc")[0].after["partitions"] == 7


def test_a_blob_is_removed_only_when_unreferenced_and_past_the_grace(
    owner: LocalServices, blobs: BlobStore
) -> None:
    referenced = _run_with(owner, "keeper", ("kept.txt", b"referenced"))
    stray_old = blobs.put_bytes(b"an old blob nothing names").digest
    stray_new = blobs.put_bytes(b"a new blob nothing names yet").digest
    _age_file(blobs, stray_old)
    _age_file(blobs, _digest(owner, referenced, "kept.txt"))
    report = owner.storage.gc()
    assert [b.digest for b in report.blobs] == [stray_old]
    assert blobs.exists(stray_new) and owner.tracking.read_artifact(referenced, "kept.txt") == b"referenced"


def test_putting_stored_bytes_again_restarts_their_age(owner: LocalServices, blobs: BlobStore) -> None:
    digest = blobs.put_bytes(b"logged again later").digest
    _age_file(blobs, digest)
    blobs.put_bytes(b"logged again later")  # deduplicated, and touched
    assert owner.storage.gc().blobs == []
    assert blobs.exists(digest)


def test_blobs_stored_since_a_registration_in_progress_began_are_kept(
    owner: LocalServices, store: MetadataStore, blobs: BlobStore
) -> None:
    owner.storage.set_retention(
        deleted_runs_days=None, prediction_log_days=None, unreferenced_blob_hours=0.01
    )
    model = owner.registry.get_or_create_model("slow", "default")
    store.registry.begin_version(
        model.name, run_id=None, flavor="sklearn", task=None, description="", model_json={}, size=1,
        created_by="test", created_at=now_ms() - 3_600_000, tags={},
    )  # fmt: skip
    during = blobs.put_bytes(b"a file of a registration still uploading").digest
    _age_file(blobs, during, time.time() - 1800)  # older than the grace, newer than the registration
    report = owner.storage.gc()
    assert report.blobs == [] and "still PENDING" in report.kept[0]
    store.registry.fail_version(model.name, 1)
    assert [b.digest for b in owner.storage.gc().blobs] == [during]


def test_every_blob_column_of_the_schema_is_known_to_gc() -> None:
    """A new column holding a digest must be added to BLOB_COLUMNS (or NOT_BLOB_COLUMNS)."""
    known = (
        {f"{c.table.name}.{c.name}" for c in BLOB_COLUMNS} | set(BLOB_JSON_COLUMNS) | set(NOT_BLOB_COLUMNS)
    )
    found = {
        f"{table.name}.{column.name}"
        for table in tables_of_the_store.metadata.tables.values()
        if isinstance(table, Table)
        for column in table.columns
        if "digest" in column.name or "blob" in column.name
    }
    assert sorted(found - known) == []
    assert sorted(known - found - set(BLOB_JSON_COLUMNS)) == []


# --- safety -----------------------------------------------------------------------------


def test_gc_under_concurrent_writers_removes_nothing_referenced(
    owner: LocalServices, store: MetadataStore, blobs: BlobStore, tmp_path: Path
) -> None:
    """Writers log fresh bytes and, above all, bytes of old unreferenced blobs (deduplicated
    writes, racing gc for the same blob) while gc runs again and again."""
    old = [f"garbage that a writer may log again {i}".encode() for i in range(300)]
    for data in old:
        _age_file(blobs, blobs.put_bytes(data).digest)
    owner.storage.set_retention(deleted_runs_days=1, prediction_log_days=None, unreferenced_blob_hours=0.05)
    stop = threading.Event()
    errors: list[BaseException] = []
    logged: list[tuple[str, str, bytes]] = []
    collections = []

    def write(seed: int) -> None:
        rng, services = random.Random(seed), Backends(store, blobs).services(local_owner())
        try:
            for round_ in range(8):
                run = services.tracking.start_run("gc", run_name=f"writer-{seed}-{round_}")
                for i in range(12):
                    data = rng.choice(old) if i % 3 else f"fresh {seed} {round_} {i}".encode()
                    if i % 4 == 0:
                        path = tmp_path / f"{seed}-{round_}-{i}.bin"
                        path.write_bytes(data)
                        services.tracking.log_artifact_path(run.id, path, f"f{i}.bin")
                    else:
                        services.tracking.log_artifact_bytes(run.id, f"f{i}.bin", data)
                    logged.append((run.id, f"f{i}.bin", data))
                services.tracking.end_run(run.id)
        except BaseException as exc:
            errors.append(exc)

    def collect() -> None:
        services = Backends(store, blobs).services(local_owner())
        try:
            while not stop.is_set():
                collections.append(services.storage.gc())
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(seed,)) for seed in range(3)]
    collector = threading.Thread(target=collect)
    collector.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    collector.join()
    collections.append(owner.storage.gc())
    assert errors == []
    assert len(collections) >= 2 and sum(len(c.blobs) for c in collections) > 0  # gc did remove garbage
    for run_id, name, data in logged:
        assert owner.tracking.read_artifact(run_id, name) == data  # read back, verified by hash
    referenced = store.retention.referenced_among([b.digest for b in blobs.stored()])
    assert all(blobs.exists(d) for d in _all_referenced(store))
    assert referenced == _all_referenced(store)


def _all_referenced(store: MetadataStore) -> set[str]:
    return set(store.db.read(lambda c: c.execute(select(artifacts.c.digest).distinct()).scalars().all()))


def test_a_gc_killed_mid_removal_leaves_the_blob_to_be_put_back(
    owner: LocalServices, blobs: BlobStore
) -> None:
    """gc sets a blob aside before its last look; killed right there, the next one puts it back."""
    run_id = _run_with(owner, "survivor", ("model.bin", b"needed bytes"))
    digest = _digest(owner, run_id, "model.bin")
    aside = Path(blobs.url, "tmp", f"gc-{digest}-4242-1")
    os.rename(blobs._path(digest), aside)  # where a killed gc leaves it
    owner.storage.gc()
    assert not aside.exists() and owner.tracking.read_artifact(run_id, "model.bin") == b"needed bytes"


# --- the worker, the CLI ----------------------------------------------------------------


def test_the_worker_runs_gc_on_a_schedule(store_url: str, tmp_path: Path) -> None:
    from loopline._pipelines import worker_services
    from loopline.wiring.backends import open_backends
    from loopline.wiring.settings import Settings

    settings = Settings(
        home=tmp_path / "home", store_uri=store_url, artifacts_uri=str(tmp_path / "artifacts")
    )
    backends = open_backends(settings)
    try:
        services, run_job = worker_services(settings, backends)
        schedule = services.automation.create_schedule("nightly-gc", "0 3 * * *", JobKind.GC, "storage")
        assert (schedule.kind, schedule.target) == (JobKind.GC, "storage")
        with pytest.raises(InvalidInput, match="a gc job's target is 'storage'"):
            services.automation.create_schedule("other-gc", "0 3 * * *", JobKind.GC, "elsewhere")
        garbage = backends.blobs.put_bytes(b"nothing refers to me").digest
        _age_file(backends.blobs, garbage)
        assert backends.store.automation.advance_schedule("nightly-gc", schedule.next_at, now_ms() - 1)
        job = Worker(backends.store, run_job, owner="test-worker").tick()
        assert job is not None and job.kind is JobKind.GC and job.status is JobStatus.FINISHED, job
        assert job.result["blobs"] == 1 and job.reason == "schedule nightly-gc (0 3 * * *) due"
        assert not backends.blobs.exists(garbage)
        assert services.audit.entries(action="storage.gc")[0].actor == services.principal.name
    finally:
        backends.close()


def test_cli_shows_and_sets_the_policy_and_collects(cli: Invoke, tmp_path: Path) -> None:
    code, out, _ = cli("gc", "policy")
    assert code == 0 and "kept forever" in out and "the default policy" in out
    code, out, _ = cli("gc", "policy", "--deleted-runs-days", "30", "--unreferenced-blob-hours", "6")
    assert code == 0 and "removed after 30 days" in out and "removed after 6 hours" in out
    code, out, _ = cli("gc", "policy", "--json")
    assert json.loads(out)["deleted_runs_days"] == 30 and json.loads(out)["prediction_log_days"] is None
    code, _, err = cli("gc", "policy", "--deleted-runs-days", "-2")
    assert (
        code == 1 and "deleted_runs_days must be a positive number of days" in err and "Traceback" not in err
    )
    code, _, err = cli("gc", "policy", "--prediction-log-days", "soon")
    assert code == 1 and "takes a number or 'forever'" in err
    code, out, _ = cli("gc", "policy", "--deleted-runs-days", "forever")
    assert code == 0 and "deleted runs:            kept forever" in out
    blobs = BlobStore(str(tmp_path / "artifacts"))
    garbage = blobs.put_bytes(b"orphan").digest
    _age_file(blobs, garbage)
    code, out, _ = cli("gc", "--dry-run", "--json")
    report = json.loads(out)
    assert code == 0 and report["dry_run"] and [b["digest"] for b in report["blobs"]] == [garbage]
    code, out, _ = cli("gc")
    assert code == 0 and "gc removed:" in out and "1 unreferenced blobs" in out
    assert not blobs.exists(garbage)
    code, out, _ = cli("schedules", "create", "nightly-gc", "--cron", "0 3 * * *", "--gc")
    assert code == 0 and "gc storage" in out
