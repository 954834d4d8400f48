"""Schedules, triggers and workers, with real stores and real worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline.automation.worker import Worker
from loopline.core.automation import Job, JobKind, JobStatus
from loopline.core.clock import now_ms
from loopline.core.errors import AlreadyExists, InvalidInput
from loopline.core.monitoring import Alert, Monitor
from loopline.services import Automation
from loopline.store import MetadataStore
from loopline.wiring.backends import local_owner
from tests.conftest import services_of
from tests.integration import pipeline_steps as steps

REPO = Path(__file__).resolve().parents[2]
TALLY = "tests.integration.pipeline_steps:tally"


@pytest.fixture
def automation(store: MetadataStore) -> Automation:
    return services_of(store, local_owner()).automation


def make_due(store: MetadataStore, name: str) -> None:
    (schedule,) = [s for s in store.automation.schedules() if s.name == name]
    assert store.automation.advance_schedule(name, schedule.next_at, now_ms() - 1)


def recorder() -> tuple[list[Job], Callable[[Job], dict[str, Any]]]:
    ran: list[Job] = []
    lock = threading.Lock()

    def run(job: Job) -> dict[str, Any]:
        with lock:
            ran.append(job)
        return {"ok": True}

    return ran, run


def race(*actions: Callable[[], object]) -> None:
    """Start the actions together on threads and wait for all of them."""
    barrier = threading.Barrier(len(actions))

    def go(action: Callable[[], object]) -> None:
        barrier.wait()
        action()

    threads = [threading.Thread(target=go, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_a_due_schedule_becomes_one_job_run_once_by_racing_workers(
    store: MetadataStore, automation: Automation
) -> None:
    automation.create_schedule("nightly", "0 3 * * *", JobKind.PIPELINE, TALLY, {"n": 1})
    ran, run = recorder()
    workers = [Worker(store, run, owner=f"w{i}") for i in range(4)]
    assert store.automation.jobs() == []  # not due yet
    make_due(store, "nightly")
    race(*(w.enqueue_due for w in workers))
    (job,) = store.automation.jobs()
    assert job.reason == "schedule nightly (0 3 * * *) due" and job.params == {"n": 1}
    race(*(w.run_one for w in workers))
    assert [j.id for j in ran] == [job.id]
    done = store.automation.job(job.id)
    assert done.status is JobStatus.FINISHED and done.attempts == 1 and done.result == {"ok": True}
    (schedule,) = store.automation.schedules()
    assert schedule.next_at > now_ms() and schedule.last_at is not None  # on to the next 03:00


def test_a_failing_job_is_recorded_with_its_error(store: MetadataStore, automation: Automation) -> None:
    def explode(job: Job) -> dict[str, Any]:
        raise ValueError("the training data is empty")

    job = automation.enqueue(JobKind.PIPELINE, TALLY)
    done = Worker(store, explode).tick()
    assert done is not None and done.id == job.id and done.status is JobStatus.FAILED
    assert done.error == "ValueError: the training data is empty" and "Traceback" in done.result["traceback"]


def _monitor(store: MetadataStore, name: str) -> None:
    store.monitors.create(Monitor(name, "churn-prod", {}, "0" * 64, now_ms(), "test", now_ms()))


def _alert(store: MetadataStore, monitor: str, rule: str) -> Alert:
    at = now_ms()
    opened, _ = store.monitors.open_alert(
        monitor, Alert(0, monitor, rule, "warning", "firing", at, at, None, 1, 0.4, f"{rule} above 0.3")
    )
    return opened


def test_alerts_trigger_pipelines_within_their_rule_and_cool_down(
    store: MetadataStore, automation: Automation
) -> None:
    _monitor(store, "churn")
    _alert(store, "churn", "drift")  # open before the trigger exists: not its business
    automation.create_trigger(
        "retrain", "churn", JobKind.PIPELINE, TALLY, {"n": 2}, rule="drift", cooldown_s=3600
    )
    worker = Worker(store, recorder()[1])
    worker.enqueue_due()
    assert store.automation.jobs() == []

    store.monitors.resolve_alert("churn", "drift", now_ms())
    first = _alert(store, "churn", "drift")
    _alert(store, "churn", "latency")  # another rule: ignored
    race(worker.enqueue_due, Worker(store, recorder()[1]).enqueue_due)
    (job,) = store.automation.jobs()
    assert job.status is JobStatus.QUEUED and f"alert {first.id} of monitor churn (drift" in job.reason

    store.monitors.resolve_alert("churn", "drift", now_ms())
    second = _alert(store, "churn", "drift")  # inside the hour of cool-down
    worker.enqueue_due()
    newest = store.automation.jobs()[0]
    assert newest.status is JobStatus.SUPPRESSED and f"alert {second.id}" in newest.reason
    assert "cool-down" in (newest.error or "")
    assert [j.status for j in store.automation.jobs(JobStatus.QUEUED)] == [JobStatus.QUEUED]


def test_mistakes_are_refused_clearly(store: MetadataStore, automation: Automation) -> None:
    with pytest.raises(InvalidInput, match="cron expression 'every day' is not valid"):
        automation.create_schedule("s", "every day", JobKind.PIPELINE, TALLY)
    with pytest.raises(InvalidInput, match="is not MODULE:PIPELINE"):
        automation.create_schedule("s", "0 * * * *", JobKind.PIPELINE, "tally")
    automation.create_schedule("s", "0 * * * *", JobKind.MONITOR, "churn")
    with pytest.raises(AlreadyExists):
        automation.create_schedule("s", "0 * * * *", JobKind.MONITOR, "churn")
    with pytest.raises(InvalidInput, match="cooldown must be >= 0"):
        automation.create_trigger("t", "churn", JobKind.PIPELINE, TALLY, cooldown_s=-1)


# real worker processes ----------------------------------------------------------------------


@pytest.fixture
def workers(store_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "LOOPLINE_TEST_JOURNAL": str(tmp_path / "journal.txt"), "PYTHONPATH": str(REPO)}

    def start(*options: str) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "loopline", "--store-uri", store_url,
            "--artifacts-uri", str(tmp_path / "artifacts"), "worker", "--poll", "0.2",
            "--allow-pipelines", "tests.integration", *options,
        ]  # fmt: skip
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def wait_for(condition: Callable[[], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def test_two_worker_processes_share_the_jobs_and_run_each_once(
    store: MetadataStore, automation: Automation, workers: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    queued = [automation.enqueue(JobKind.PIPELINE, TALLY, {"n": n}) for n in range(6)]
    first, second = workers(), workers()
    wait_for(lambda: all(store.automation.job(j.id).status is JobStatus.FINISHED for j in queued))
    for process in (first, second):
        process.send_signal(signal.SIGTERM)  # stops after the job in hand
        assert process.wait(timeout=60) == 0
    monkeypatch.setenv("LOOPLINE_TEST_JOURNAL", str(tmp_path / "journal.txt"))
    assert Counter(steps.entries()) == {f"tally-{n}": 1 for n in range(6)}
    assert all(store.automation.job(j.id).attempts == 1 for j in queued)


def test_a_killed_workers_job_is_taken_over_once_its_lease_expires(
    store: MetadataStore, automation: Automation, workers: Any, tmp_path: Path
) -> None:
    job = automation.enqueue(
        JobKind.PIPELINE, "tests.integration.pipeline_steps:slow", {"marker": str(tmp_path / "m")}
    )
    doomed = workers("--lease", "2")
    wait_for(lambda: (tmp_path / "m").exists())  # the step is sleeping inside the job
    taken = store.automation.job(job.id)
    assert taken.status is JobStatus.RUNNING
    doomed.kill()
    doomed.wait()
    workers("--lease", "2")
    wait_for(lambda: store.automation.job(job.id).status is JobStatus.FINISHED)
    done = store.automation.job(job.id)
    assert done.attempts == 2 and done.lease_owner != taken.lease_owner
    assert done.result["status"] == "FINISHED"


def test_the_cli_declares_schedules_queues_jobs_and_runs_a_worker_once(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline import _sdk

    monkeypatch.setenv("LOOPLINE_TEST_JOURNAL", str(tmp_path / "journal.txt"))
    code, out, _ = cli(
        "schedules", "create", "nightly", "--cron", "0 3 * * *", "--pipeline", TALLY, "-p", "n=3"
    )
    assert code == 0 and "next due" in out
    assert "nightly" in cli("schedules", "list")[1]
    code, out, _ = cli("jobs", "enqueue", "--pipeline", TALLY, "-p", "n=4")
    assert code == 0 and "queued" in out
    try:
        code, out, _ = cli("worker", "--once", "--allow-pipelines", "tests.integration")
    finally:
        _sdk.reset()
    assert code == 0 and "finished" in out
    assert steps.entries() == ["tally-4"]
    (listed,) = json.loads(cli("jobs", "list", "--json")[1])
    assert listed["status"] == "finished" and listed["reason"].startswith("queued by")
    code, _, err = cli("schedules", "create", "bad", "--cron", "every day", "--monitor", "churn")
    assert code == 1 and "is not valid" in err
    code, _, err = cli("schedules", "create", "none", "--cron", "0 * * * *")
    assert code == 2 and "exactly one of --pipeline" in err


def test_a_worker_imports_pipelines_only_from_its_allowed_modules(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline import _sdk

    monkeypatch.setenv("LOOPLINE_TEST_JOURNAL", str(tmp_path / "journal.txt"))
    assert cli("jobs", "enqueue", "--pipeline", TALLY, "-p", "n=1")[0] == 0
    try:
        code, out, _ = cli("worker", "--once", "--allow-pipelines", "training, tests.integration.pipeline")
        (job,) = json.loads(cli("jobs", "list", "--json")[1])
        assert code == 0 and job["status"] == "failed"
        assert "is outside the modules pipelines may be imported from here (training" in job["error"]
        assert steps.entries() == []  # refused before the import, so nothing of it ran
        assert cli("jobs", "enqueue", "--pipeline", TALLY, "-p", "n=2")[0] == 0
        monkeypatch.setenv("LOOPLINE_WORKER_PIPELINES", "training,tests.integration")
        code, out, _ = cli("worker", "--once")
        monkeypatch.delenv("LOOPLINE_WORKER_PIPELINES")
        assert cli("jobs", "enqueue", "--pipeline", TALLY, "-p", "n=3")[0] == 0
        assert cli("worker", "--once")[0] == 0  # configured nowhere: no module is allowed
    finally:
        _sdk.reset()
    assert code == 0 and "finished" in out
    assert steps.entries() == ["tally-2"]
    newest = json.loads(cli("jobs", "list", "--json")[1])[0]
    assert newest["status"] == "failed" and "(none yet)" in newest["error"]
    audited = json.loads(cli("audit", "list", "--action", "pipeline.run", "--json")[1])
    assert [(e["target"], e["after"]) for e in audited] == [(f"pipeline:{TALLY}", {"params": {"n": 2}})]
