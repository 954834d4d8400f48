"""Materialization as a worker job: from a schedule, from a monitor's alert, queued by hand
(in the SDK, over REST, from the CLI), and as a task on a real local Ray. The worker is the
real one, wired as `loopline worker` wires it, over real stores."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline._pipelines import worker_services
from loopline.automation.worker import Worker
from loopline.core.automation import Job, JobKind, JobStatus
from loopline.core.clock import now_ms
from loopline.core.errors import InvalidInput, NotFound
from loopline.core.features import Entity, Feature, FeatureView
from loopline.core.monitoring import Alert, Monitor
from loopline.services import Services
from loopline.store import MetadataStore
from loopline.wiring.backends import Backends, local_owner, open_backends
from loopline.wiring.local import LocalServices
from loopline.wiring.settings import Settings
from tests.conftest import services_of

BOTH_MODES = True  # the tests that take `services` run in process and through a real server
CUSTOMER = Entity("customer", ("customer_id",))
END = "2024-02-01T00:00:00+00:00"


def _write(path: Path, rows: list[tuple[int, str, str, float]]) -> None:
    frame = pd.DataFrame(rows, columns=["customer_id", "event_ts", "created_ts", "spend"])
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True, format="ISO8601")
    frame["created_ts"] = pd.to_datetime(frame["created_ts"], utc=True, format="ISO8601")
    frame.to_parquet(path)


def _view(source: Path) -> FeatureView:
    return FeatureView(
        name="stats", entities=("customer",), source=str(source), event_time="event_ts",
        created_time="created_ts", features=(Feature("spend", "float64"),),
    )  # fmt: skip


ROWS = [(1, "2024-01-01", "2024-01-01", 10.0), (1, "2024-01-05", "2024-01-05", 50.0),
        (2, "2024-01-02", "2024-01-02", 20.0)]  # fmt: skip


@dataclass
class World:
    """A worker's services and job runner, wired from settings as `loopline worker` wires them."""

    settings: Settings
    backends: Backends
    services: LocalServices
    worker: Worker

    @property
    def store(self) -> MetadataStore:
        return self.backends.store

    def online(self, customers: list[int]) -> list[Any]:
        return self.services.features.get_online({"customer_id": customers}, ["stats:spend"])["spend"]


@contextlib.contextmanager
def _world(store_url: str, home: Path, artifacts: Path) -> Iterator[World]:
    settings = Settings(
        home=home, store_uri=store_url, artifacts_uri=str(artifacts),
        online_store=f"sqlite:///{home / 'online.db'}",
    )  # fmt: skip
    backends = open_backends(settings)
    services, run_job = worker_services(settings, backends)
    try:
        yield World(settings, backends, services, Worker(backends.store, run_job, owner="test-worker"))
    finally:
        backends.close()


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[World]:
    """A worker over the test store, with a `stats` view over three rows of two customers."""
    source = tmp_path / "stats.parquet"
    _write(source, ROWS)
    with _world(store_url, tmp_path / "home", tmp_path / "artifacts") as made:
        made.services.features.apply([CUSTOMER], [_view(source)])
        yield made


def _make_due(store: MetadataStore, name: str) -> None:
    (schedule,) = [s for s in store.automation.schedules() if s.name == name]
    assert store.automation.advance_schedule(name, schedule.next_at, now_ms() - 1)


def _finished(job: Job | None) -> Job:
    assert job is not None, "the worker found no job"
    assert job.status is JobStatus.FINISHED, job.error
    return job


def test_a_due_schedule_materializes_on_a_worker_incrementally(world: World, tmp_path: Path) -> None:
    world.services.automation.create_schedule("stats-hourly", "0 * * * *", JobKind.MATERIALIZE, "stats")
    assert world.worker.tick() is None  # not due yet
    assert world.online([1, 2]) == [None, None]

    _make_due(world.store, "stats-hourly")
    first = _finished(world.worker.tick())
    assert first.kind is JobKind.MATERIALIZE and first.reason == "schedule stats-hourly (0 * * * *) due"
    assert first.result["view"] == "stats@1" and first.result["since_us"] is None
    assert first.result["keys_written"] == 2 and first.result["on"] == "local"
    assert world.online([1, 2, 3]) == [50.0, 20.0, None]

    _make_due(world.store, "stats-hourly")
    second = _finished(world.worker.tick())
    assert second.id != first.id
    assert second.result["since_us"] == first.result["until_us"] and second.result["keys_written"] == 0

    # a row written since: only it is read and written
    now = datetime.now(UTC).isoformat()
    _write(tmp_path / "stats.parquet", [*ROWS, (3, now, now, 30.0)])
    _make_due(world.store, "stats-hourly")
    third = _finished(world.worker.tick())
    assert third.result["keys_written"] == 1 and world.online([1, 2, 3]) == [50.0, 20.0, 30.0]
    audited = world.store.audit.entries(action="feature_view.materialize")
    assert len(audited) == 3


def test_an_alert_triggers_a_materialization(world: World) -> None:
    world.store.monitors.create(Monitor("churn", "churn-prod", {}, "0" * 64, now_ms(), "test", now_ms()))
    world.services.automation.create_trigger(
        "refresh-on-drift", "churn", JobKind.MATERIALIZE, "stats@1", {"end": END}, rule="drift"
    )
    assert world.worker.tick() is None  # no alert yet
    at = now_ms()
    alert, _ = world.store.monitors.open_alert(
        "churn", Alert(0, "churn", "drift", "warning", "firing", at, at, None, 1, 0.4, "drift above 0.3")
    )
    job = _finished(world.worker.tick())
    assert job.kind is JobKind.MATERIALIZE and job.target == "stats@1"
    assert f"trigger refresh-on-drift: alert {alert.id} of monitor churn" in job.reason
    assert job.result["keys_written"] == 2 and job.result["until_us"] == int(
        datetime.fromisoformat(END).timestamp() * 1_000_000
    )
    assert world.online([1, 2]) == [50.0, 20.0]


def test_materialize_jobs_are_declared_in_the_sdk_and_over_rest_and_mistakes_refused(
    store: MetadataStore, services: Services, tmp_path: Path
) -> None:
    source = tmp_path / "stats.parquet"
    _write(source, ROWS)
    services_of(store, local_owner()).features.apply([CUSTOMER], [_view(source)])
    store.monitors.create(Monitor("churn", "churn-prod", {}, "0" * 64, now_ms(), "test", now_ms()))
    automation = services.automation

    schedule = automation.create_schedule("nightly", "0 3 * * *", JobKind.MATERIALIZE, "stats", {"on": "ray"})
    assert (schedule.kind, schedule.target, schedule.params) == (JobKind.MATERIALIZE, "stats", {"on": "ray"})
    trigger = automation.create_trigger("refresh", "churn", JobKind.MATERIALIZE, "stats@1", {"end": END})
    assert trigger.kind is JobKind.MATERIALIZE and trigger.target == "stats@1"
    job = automation.enqueue(JobKind.MATERIALIZE, "stats")
    assert job.kind is JobKind.MATERIALIZE and job.status is JobStatus.QUEUED

    with pytest.raises(
        NotFound, match=r"cannot materialize 'nope': feature view 'nope' does not exist; apply"
    ):
        automation.create_schedule("s", "0 * * * *", JobKind.MATERIALIZE, "nope")
    with pytest.raises(NotFound, match="version 7 of feature view 'stats' does not exist"):
        automation.enqueue(JobKind.MATERIALIZE, "stats@7")
    with pytest.raises(NotFound, match="feature view 'nope' does not exist"):
        automation.create_trigger("t", "churn", JobKind.MATERIALIZE, "nope")
    with pytest.raises(InvalidInput, match="is not NAME or NAME@VERSION"):
        automation.enqueue(JobKind.MATERIALIZE, "stats@latest")
    with pytest.raises(InvalidInput, match="on 'gpu' is not one of local, ray"):
        automation.enqueue(JobKind.MATERIALIZE, "stats", {"on": "gpu"})
    with pytest.raises(InvalidInput, match="end 'yesterday' is not an ISO time"):
        automation.enqueue(JobKind.MATERIALIZE, "stats", {"end": "yesterday"})
    with pytest.raises(InvalidInput, match="takes the params end, on and ray_address, not rows"):
        automation.enqueue(JobKind.MATERIALIZE, "stats", {"rows": 5})
    assert [j.id for j in automation.jobs()] == [job.id]  # nothing refused was queued


def test_the_cli_schedules_queues_and_runs_materializations(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_HOME", str(tmp_path / "home"))  # the online store lives there
    source = tmp_path / "stats.parquet"
    _write(source, ROWS)
    definitions = tmp_path / "features.yaml"
    definitions.write_text(
        "entities:\n  - {name: customer, join_keys: [customer_id]}\nfeature_views:\n"
        f"  - {{name: stats, entities: [customer], source: '{source}', event_time: event_ts, "
        "created_time: created_ts, features: {spend: float64}}\n"
    )
    assert cli("features", "apply", str(definitions))[0] == 0
    code, out, _ = cli("schedules", "create", "hourly", "--cron", "0 * * * *", "--materialize", "stats")
    assert code == 0 and "materialize stats" in out
    code, _, err = cli("schedules", "create", "bad", "--cron", "0 * * * *", "--materialize", "nope")
    assert code == 1 and "cannot materialize 'nope': feature view 'nope' does not exist" in err
    code, _, err = cli("jobs", "enqueue", "--materialize", "stats", "-p", "end")
    assert code == 2 and "'end' is not NAME=VALUE" in err
    assert cli("jobs", "enqueue", "--materialize", "stats", "-p", f"end={END}")[0] == 0
    code, out, _ = cli("worker", "--once")
    assert code == 0 and "finished" in out
    (job,) = json.loads(cli("jobs", "list", "--json")[1])
    assert job["kind"] == "materialize" and job["params"] == {"end": END}
    assert job["result"]["keys_written"] == 2 and job["result"]["view"] == "stats@1"
    code, out, _ = cli("features", "get", "-e", "customer_id=1", "-e", "customer_id=2", "-f", "stats:spend")
    assert code == 0 and json.loads(out)["spend"] == [50.0, 20.0]
    code, _, err = cli("features", "materialize", "stats", "--on", "gpu")
    assert code == 1 and "on 'gpu' is not one of local, ray" in err


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # Ray's path is the same on any store
def test_on_ray_a_materialization_writes_what_the_local_one_writes(
    store_url: str, tmp_path: Path, cli: Any
) -> None:
    source = tmp_path / "stats.parquet"
    _write(source, [*ROWS, (3, "2024-01-03", "2024-01-09", 30.0), (3, "2024-01-04", "2024-01-04", 35.0)])
    customers = [1, 2, 3, 4]
    # three online stores over one metadata store, written: in this process, by a Ray task
    # that a worker's job starts, and by one that the CLI starts
    with (
        _world(store_url, tmp_path / "a", tmp_path / "artifacts") as here,
        _world(store_url, tmp_path / "b", tmp_path / "artifacts") as there,
    ):
        here.services.features.apply([CUSTOMER], [_view(source)])
        done = here.services.features.materialize("stats", end=datetime.fromisoformat(END))
        assert done.keys_written == 3
        job = here.services.automation.enqueue(JobKind.MATERIALIZE, "stats", {"end": END, "on": "ray"})
        ran = _finished(there.worker.tick())
        assert ran.id == job.id
        assert ran.result == {
            "view": done.view, "since_us": None, "until_us": done.until_us, "keys_written": 3, "on": "ray"
        }  # fmt: skip
        assert there.online(customers) == here.online(customers) == [50.0, 20.0, 35.0, None]

    home = ("--home", str(tmp_path / "c"))
    code, out, err = cli(*home, "features", "materialize", "stats", "--on", "ray", "--end", END, "--json")
    assert code == 0, err
    assert json.loads(out) == ran.result
    lookup = [arg for c in customers for arg in ("-e", f"customer_id={c}")]
    code, out, _ = cli(*home, "features", "get", *lookup, "-f", "stats:spend")
    assert code == 0 and json.loads(out)["spend"] == [50.0, 20.0, 35.0, None]
    code, _, err = cli(*home, "features", "materialize", "nope", "--on", "ray")
    assert code == 1 and "feature view 'nope' does not exist" in err  # raised in the task, shown as itself
