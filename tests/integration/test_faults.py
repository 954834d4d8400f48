"""Crashes, kills, signals and concurrent writers, with real processes on real stores."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from loopline.artifacts import BlobStore
from loopline.core.entities import Metric, Principal, RunStatus
from loopline.core.errors import PermissionDenied
from loopline.governance.audit import AuditTrail
from loopline.store import open_metadata_store
from loopline.tracking.service import TrackingService
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner

VALUES_PER_PROCESS = 10_000


def _log_many(url: str, artifacts: str, run_id: str, worker: int) -> None:
    store = open_metadata_store(url)
    tracker = Tracker(
        Backends(store, BlobStore(artifacts)).services(local_owner()).tracking, capture_context=False
    )
    for step in range(VALUES_PER_PROCESS):
        tracker.writer.add(run_id, Metric(f"worker_{worker}", float(step), step, 1_000 + step))
    tracker.close()
    store.close()


@pytest.mark.slow
def test_eight_processes_logging_to_one_run_lose_nothing(store_url: str, tmp_path: Path) -> None:
    store = open_metadata_store(store_url)
    service = Backends(store, BlobStore(str(tmp_path / "a"))).services(local_owner()).tracking
    run = service.start_run("concurrency")
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_log_many, args=(store_url, str(tmp_path / "a"), run.id, i)) for i in range(8)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0  # any store error would have raised in the worker
    stored = service.get_run(run.id)
    assert stored.metrics == {f"worker_{i}": float(VALUES_PER_PROCESS - 1) for i in range(8)}
    for i in range(8):
        history = service.metric_history(run.id, f"worker_{i}")
        assert [m.step for m in history] == list(range(VALUES_PER_PROCESS))
    store.close()


def _script(body: str) -> str:
    return "import loopline as ll, os, sys, time\n" + textwrap.dedent(body)


def _start(body: str, url: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "LOOPLINE_STORE_URI": url, "LOOPLINE_ARTIFACTS_URI": str(tmp_path / "artifacts")}
    return subprocess.Popen(
        [sys.executable, "-c", _script(body)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background inherits SIGINT ignored, and Python then leaves it so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line:
        raise AssertionError(f"child printed nothing; stderr: {process.communicate()[1]}")
    return line


def _service(url: str, tmp_path: Path) -> TrackingService:
    return (
        Backends(open_metadata_store(url), BlobStore(str(tmp_path / "artifacts")))
        .services(local_owner())
        .tracking
    )


@pytest.mark.slow
def test_sigkill_while_logging_keeps_what_was_flushed(store_url: str, tmp_path: Path) -> None:
    child = _start(
        """
        run = ll.start_run("crash")
        for step in range(5000):
            run.log_metric("loss", 1.0, step=step)
        run.flush()
        print(run.id, flush=True)
        step = 5000
        while True:  # keeps logging until killed
            run.log_metric("loss", 1.0, step=step)
            step += 1
        """,
        store_url,
        tmp_path,
    )
    run_id = _first_line(child)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    service = _service(store_url, tmp_path)
    run = service.get_run(run_id)
    assert run.status is RunStatus.RUNNING  # nobody could record the ending
    steps = [m.step for m in service.metric_history(run_id, "loss")]
    assert steps[:5000] == list(range(5000))
    if store_url.startswith("sqlite"):
        check = service._store.db.read(lambda conn: conn.execute(text("PRAGMA integrity_check")).scalar())
        assert check == "ok"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, None)])
def test_a_signalled_run_is_recorded_as_killed(
    store_url: str, tmp_path: Path, signum: signal.Signals, code: int | None
) -> None:
    child = _start(
        """
        with ll.start_run("signals") as run:
            run.log_metric("before", 1.0)  # buffered, not flushed: ending must flush it
            print(run.id, flush=True)
            while True:
                time.sleep(0.01)
        """,
        store_url,
        tmp_path,
    )
    run_id = _first_line(child)
    child.send_signal(signum)
    child.wait(timeout=30)
    if code is not None:
        assert child.returncode == code  # still dies of the signal, as its sender meant
    run = _service(store_url, tmp_path).get_run(run_id)
    assert run.status is RunStatus.KILLED
    assert run.metrics == {"before": 1.0}


def test_a_run_left_open_ends_at_exit(store_url: str, tmp_path: Path) -> None:
    child = _start(
        """
        run = ll.start_run("exit")
        print(run.id, flush=True)
        run.log_metric("last", 3.0)
        """,
        store_url,
        tmp_path,
    )
    run_id = _first_line(child)
    assert child.wait(timeout=30) == 0
    run = _service(store_url, tmp_path).get_run(run_id)
    assert (run.status, run.metrics) == (RunStatus.FINISHED, {"last": 3.0})


def test_an_uncaught_exception_outside_a_block_fails_the_run(store_url: str, tmp_path: Path) -> None:
    child = _start(
        """
        run = ll.start_run("exit")
        print(run.id, flush=True)
        raise RuntimeError("lost the data")
        """,
        store_url,
        tmp_path,
    )
    run_id = _first_line(child)
    assert child.wait(timeout=30) == 1
    run = _service(store_url, tmp_path).get_run(run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "RuntimeError: lost the data" in run.error


@pytest.mark.slow
def test_sigkill_between_changes_leaves_no_change_without_its_audit_entry(
    store_url: str, tmp_path: Path
) -> None:
    """Processes creating models as fast as they can are killed at random moments: every
    model that exists has its entry, every entry its model, and the chain is whole."""
    body = """
        from loopline.artifacts import BlobStore
        from loopline.store import open_metadata_store
        from loopline.wiring.backends import Backends, local_owner

        store = open_metadata_store(os.environ["LOOPLINE_STORE_URI"])
        blobs = BlobStore(os.environ["LOOPLINE_ARTIFACTS_URI"])
        registry = Backends(store, blobs).services(local_owner()).registry
        print("ready", flush=True)
        for i in range(1_000_000):
            registry.create_model(f"m-{os.getpid()}-{i}")
        """
    rng = random.Random(7)
    for _ in range(12):
        child = _start(body, store_url, tmp_path)
        assert _first_line(child) == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    store = open_metadata_store(store_url)
    models = store.db.read(lambda conn: conn.execute(text("SELECT count(*) FROM registered_models")).scalar())
    entries = store.db.read(
        lambda conn: conn.execute(
            text("SELECT count(*) FROM audit_log WHERE action = 'model.create'")
        ).scalar()
    )
    assert models == entries and models > 12  # each child created some before it died
    assert AuditTrail(store, local_owner()).verify().intact
    store.close()


def test_a_run_whose_process_died_is_ended_by_the_janitor(store_url: str, tmp_path: Path) -> None:
    child = _start(
        """
        run = ll.start_run("doomed")
        print(run.id, flush=True)
        while True:
            time.sleep(0.05)
        """,
        store_url,
        tmp_path,
    )
    run_id = _first_line(child)
    service = _service(store_url, tmp_path)
    beat = text("SELECT heartbeat_at FROM runs WHERE id = :id")
    deadline = time.monotonic() + 20
    while service._store.db.read(lambda conn: conn.execute(beat, {"id": run_id}).scalar()) is None:
        assert time.monotonic() < deadline, "the SDK sent no heartbeat"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    quiet = service.start_run("another client's run, which sends no heartbeats")
    assert service.end_silent_runs() == []  # not silent for long enough yet
    time.sleep(0.01)
    assert service.end_silent_runs(silent_for_s=0.001) == [run_id]
    ended = service.get_run(run_id)
    assert ended.status is RunStatus.KILLED and "sent no heartbeat" in (ended.error or "")
    assert service.get_run(quiet.id).status is RunStatus.RUNNING
    (entry,) = AuditTrail(service._store, local_owner()).entries(action="run.end", target=f"run:{run_id}")
    assert (entry.before, entry.after) == ("RUNNING", "KILLED")
    with pytest.raises(PermissionDenied, match="only an administrator"):
        Backends(service._store, BlobStore(str(tmp_path))).services(
            Principal("eve")
        ).tracking.end_silent_runs()
