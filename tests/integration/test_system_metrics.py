"""System metrics of tracked runs, sampled for real on this machine and logged to real stores.

The machine has no GPU: the GPU path runs against a fake of NVIDIA's NVML bindings, a
third-party library that cannot run here.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

import loopline as ll
from loopline import _sdk
from loopline.core.entities import RunStatus
from loopline.core.errors import InvalidInput
from loopline.services import Tracking
from loopline.tracking.active_run import ActiveRun
from loopline.tracking.system_metrics import (
    ENABLED_VARIABLE,
    INTERVAL_VARIABLE,
    THREAD_NAME,
    SystemMetricsSampler,
)
from loopline.tracking.tracker import Tracker
from tests.conftest import wait_until

COUNTERS = {
    "system/disk_read_mb",
    "system/disk_write_mb",
    "system/network_receive_mb",
    "system/network_transmit_mb",
}
MACHINE_KEYS = {"system/cpu_percent", "system/memory_used_mb", "system/memory_percent"} | {
    # some containers show no disk: then psutil has no counters, and loopline logs none
    key
    for key in COUNTERS
    if (psutil.disk_io_counters() if "disk" in key else psutil.net_io_counters()) is not None
}


@pytest.fixture(autouse=True)
def _no_system_metrics_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENABLED_VARIABLE, raising=False)
    monkeypatch.delenv(INTERVAL_VARIABLE, raising=False)


@pytest.fixture
def sdk(store_url: str, tmp_path: Path) -> Iterator[None]:
    ll.configure(store_uri=store_url, artifacts_uri=str(tmp_path / "artifacts"))
    yield
    _sdk.reset()


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def burn_cpu(seconds: float = 0.05) -> float:
    """Training's stand-in: pure CPU work."""
    total, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        total += sum(i * i for i in range(2000))
    return total


def train_until(run: ActiveRun, service: Tracking, samples: int) -> None:
    """Work until the sampler has logged `samples` values."""

    def enough() -> bool:
        burn_cpu()
        run.flush()
        return len(service.metric_history(run.id, "system/cpu_percent")) >= samples

    wait_until(enough, timeout=20)


def system_keys(tracker: Tracker, run_id: str) -> set[str]:
    return {key for key in tracker.service.get_run(run_id).metrics if key.startswith("system/")}


@pytest.mark.parametrize("mode", ["local", "remote"], indirect=True)
def test_a_run_logs_the_machine_at_steps_0_to_n_until_it_ends(tracker: Tracker) -> None:
    stored = tracker.service  # in remote mode, histories of keys with a "/" come through the server
    started_ms = time.time_ns() // 1_000_000
    with tracker.start_run("train", system_metrics=True, system_metrics_interval_s=0.05) as run:
        assert len(sampler_threads()) == 1
        train_until(run, stored, 3)
    ended_ms = time.time_ns() // 1_000_000

    assert sampler_threads() == []
    assert tracker.service.get_run(run.id).status is RunStatus.FINISHED
    assert system_keys(tracker, run.id) >= MACHINE_KEYS
    assert all(key.startswith("system/gpu_") for key in system_keys(tracker, run.id) - MACHINE_KEYS)
    cpu = stored.metric_history(run.id, "system/cpu_percent")
    assert len(cpu) >= 4  # three while training, one more as the run ended
    assert [m.step for m in cpu] == list(range(len(cpu)))
    assert all(0.0 <= m.value <= 100.0 for m in cpu)
    assert all(started_ms <= m.timestamp <= ended_ms for m in cpu)
    assert [m.timestamp for m in cpu] == sorted(m.timestamp for m in cpu)
    for key in ("system/memory_used_mb", "system/memory_percent"):
        history = stored.metric_history(run.id, key)
        assert [m.step for m in history] == list(range(len(cpu)))
        assert all(m.value > 0 for m in history)
    for key in MACHINE_KEYS & COUNTERS:
        values = [m.value for m in stored.metric_history(run.id, key)]
        assert len(values) == len(cpu)
        assert values[0] >= 0 and values == sorted(values)  # counted from the run's start


def test_runs_without_it_log_no_system_metrics(tracker: Tracker) -> None:
    with tracker.start_run("train") as run:
        assert sampler_threads() == []
        burn_cpu()
        run.log_metric("loss", 0.5)
    assert system_keys(tracker, run.id) == set()


@pytest.mark.parametrize("ending", ["exception", "end", "interrupt"])
def test_the_sampler_stops_with_a_last_sample_however_the_run_ends(tracker: Tracker, ending: str) -> None:
    interval = 3600.0  # no sample on the interval: the only one is the last
    if ending == "end":
        run = tracker.start_run("train", system_metrics=True, system_metrics_interval_s=interval)
        run.end(RunStatus.FINISHED)
    else:
        error = ZeroDivisionError if ending == "exception" else KeyboardInterrupt
        with (
            pytest.raises(error),
            tracker.start_run("train", system_metrics=True, system_metrics_interval_s=interval) as run,
        ):
            assert len(sampler_threads()) == 1
            raise error
    assert sampler_threads() == []
    assert [m.step for m in tracker.service.metric_history(run.id, "system/memory_used_mb")] == [0]


def test_the_sdk_and_the_environment_turn_it_on(sdk: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with ll.start_run("train", system_metrics=True, system_metrics_interval_s=0.05) as explicit:
        train_until(explicit, ll.tracking_service(), 2)

    monkeypatch.setenv(ENABLED_VARIABLE, "1")
    monkeypatch.setenv(INTERVAL_VARIABLE, "0.05")  # the 10 s default would time train_until out
    with ll.start_run("train") as from_environment:
        train_until(from_environment, ll.tracking_service(), 3)
    with ll.start_run("train", system_metrics=False) as refused:
        burn_cpu()

    assert sampler_threads() == []
    service = ll.tracking_service()
    for run in (explicit, from_environment):
        assert set(service.get_run(run.id).metrics) >= MACHINE_KEYS
    assert not any(key.startswith("system/") for key in service.get_run(refused.id).metrics)


class BreaksAfterOneSample:
    """Logs the first sample to a real run, then fails as a full disk would."""

    def __init__(self, run: ActiveRun | None) -> None:
        self.run = run
        self.calls = 0

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, timestamp: int | None = None) -> None:
        self.calls += 1
        if self.calls > 1:
            raise OSError("No space left on device")
        assert self.run is not None
        self.run.log_metrics(metrics, step=step, timestamp=timestamp)


def test_an_error_while_logging_warns_once_stops_sampling_and_training_goes_on(tracker: Tracker) -> None:
    with tracker.start_run("train") as run:
        logger = BreaksAfterOneSample(run)
        sampler = SystemMetricsSampler(logger, 0.02)
        with pytest.warns(RuntimeWarning) as caught:
            sampler.start()
            wait_until(lambda: not sampler.running, timeout=10)
            sampler.stop()
        for step in range(10):  # training goes on
            run.log_metric("loss", 1 / (step + 1), step=step)

    ours = [str(w.message) for w in caught if str(w.message).startswith("loopline system metrics:")]
    assert ours == [
        "loopline system metrics: OSError: No space left on device; sampling stopped for this run"
    ]
    assert logger.calls == 2  # nothing tried after the failure, not even the last sample
    stored = tracker.service.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert len(tracker.service.metric_history(run.id, "loss")) == 10
    assert [m.step for m in tracker.service.metric_history(run.id, "system/cpu_percent")] == [0]


@pytest.mark.parametrize("interval", [0, -1.0, float("nan"), float("inf"), True, "soon"])
def test_the_interval_must_be_a_positive_number_of_seconds(tracker: Tracker, interval: Any) -> None:
    with pytest.raises(
        InvalidInput, match="system_metrics_interval_s must be a number of seconds greater than 0"
    ):
        tracker.start_run("train", system_metrics=True, system_metrics_interval_s=interval)
    assert tracker.active_run() is None
    assert tracker.service.search_runs().runs == []  # refused before the run was created
    with pytest.raises(InvalidInput, match="greater than 0"):
        SystemMetricsSampler(BreaksAfterOneSample(None), interval)


def test_bad_variables_are_refused_before_the_run_starts(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENABLED_VARIABLE, "1")
    monkeypatch.setenv(INTERVAL_VARIABLE, "0")
    with pytest.raises(InvalidInput, match=f"{INTERVAL_VARIABLE} must be a number of seconds greater than 0"):
        tracker.start_run("train")
    monkeypatch.setenv(ENABLED_VARIABLE, "sometimes")
    with pytest.raises(InvalidInput, match=f"{ENABLED_VARIABLE} must be 1 or 0"):
        tracker.start_run("train")
    assert tracker.active_run() is None
    assert tracker.service.search_runs().runs == []


def test_without_psutil_it_says_what_to_install(tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # makes `import psutil` fail
    with pytest.raises(InvalidInput, match=r"pip install 'loopline\[system\]'"):
        tracker.start_run("train", system_metrics=True)
    with tracker.start_run("train") as run:  # only system metrics need it
        run.log_metric("loss", 0.5)


class FakeNvml:
    """NVIDIA's `pynvml` on a machine with two GPUs; `broken` GPUs stop answering after one read."""

    def __init__(self, *, driver: bool = True, broken: frozenset[int] = frozenset()) -> None:
        self.driver = driver
        self.broken = broken
        self.initialised = False
        self.reads = [0, 0]

    def nvmlInit(self) -> None:
        if not self.driver:
            raise RuntimeError("NVML Shared Library Not Found")
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        assert self.initialised
        self.reads[handle] += 1
        if handle in self.broken and self.reads[handle] > 1:
            raise RuntimeError("GPU is lost")
        return SimpleNamespace(gpu=30 + 10 * handle, memory=5)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=(handle + 1) * 2_000_000_000, total=16_000_000_000)


def test_gpus_are_logged_through_nvml_and_nvml_is_shut_down(tracker: Tracker) -> None:
    nvml = FakeNvml()
    with tracker.start_run("train") as run:
        sampler = SystemMetricsSampler(run, 0.02, nvml=nvml).start()
        wait_until(lambda: nvml.reads[0] >= 3, timeout=10)
        sampler.stop()
    assert not nvml.initialised

    def history(key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in tracker.service.metric_history(run.id, key)]

    steps = [step for step, _ in history("system/cpu_percent")]
    assert len(steps) >= 4
    assert history("system/gpu_0_utilization_percent") == [(step, 30.0) for step in steps]
    assert history("system/gpu_1_utilization_percent") == [(step, 40.0) for step in steps]
    assert history("system/gpu_0_memory_used_mb") == [(step, 2000.0) for step in steps]
    assert history("system/gpu_1_memory_used_mb") == [(step, 4000.0) for step in steps]


def test_a_gpu_that_stops_answering_is_dropped_and_the_rest_goes_on(tracker: Tracker) -> None:
    nvml = FakeNvml(broken=frozenset({1}))
    with warnings.catch_warnings(record=True) as caught, tracker.start_run("train") as run:
        warnings.simplefilter("always")
        sampler = SystemMetricsSampler(run, 0.02, nvml=nvml).start()
        wait_until(lambda: nvml.reads[0] >= 3, timeout=10)
        sampler.stop()
    assert [str(w.message) for w in caught if "system metrics" in str(w.message)] == []
    samples = len(tracker.service.metric_history(run.id, "system/cpu_percent"))
    assert len(tracker.service.metric_history(run.id, "system/gpu_0_utilization_percent")) == samples
    assert [m.step for m in tracker.service.metric_history(run.id, "system/gpu_1_utilization_percent")] == [0]


def test_without_an_nvidia_driver_gpus_are_skipped_silently(tracker: Tracker) -> None:
    with warnings.catch_warnings(record=True) as caught, tracker.start_run("train") as run:
        warnings.simplefilter("always")
        sampler = SystemMetricsSampler(run, 3600.0, nvml=FakeNvml(driver=False)).start()
        sampler.stop()
    assert [str(w.message) for w in caught if "system metrics" in str(w.message)] == []
    assert system_keys(tracker, run.id) == MACHINE_KEYS
