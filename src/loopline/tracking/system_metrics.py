"""Samples the machine while a run trains, and logs it as the run's `system/...` metrics.

CPU, memory, disk and network come from psutil (`pip install 'loopline[system]'`); NVIDIA
GPUs from NVML (`pynvml`, package nvidia-ml-py) when it imports and finds a driver. Turned
on by `start_run(system_metrics=True)` or LOOPLINE_SYSTEM_METRICS=1; one sample every
`system_metrics_interval_s` seconds (LOOPLINE_SYSTEM_METRICS_INTERVAL, default 10) and one
more as the run ends, at steps 0, 1, 2... Disk and network figures count from the run's
start. Megabytes are 10^6 bytes.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol, cast

from loopline.core.errors import InvalidInput

ENABLED_VARIABLE = "LOOPLINE_SYSTEM_METRICS"
INTERVAL_VARIABLE = "LOOPLINE_SYSTEM_METRICS_INTERVAL"
DEFAULT_INTERVAL_S = 10.0
THREAD_NAME = "loopline-system-metrics"

_MB = 1_000_000
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")

log = logging.getLogger(__name__)


class MetricLogger(Protocol):
    """Where samples go: an ActiveRun."""

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, timestamp: int | None = None) -> None:
        """Log several metric values at `step`."""


class Nvml(Protocol):
    """The part of NVIDIA's NVML bindings (the `pynvml` module) the sampler calls."""

    def nvmlInit(self) -> None:
        """Load the driver's library; raises when there is none."""

    def nvmlShutdown(self) -> None:
        """Release what nvmlInit took."""

    def nvmlDeviceGetCount(self) -> int:
        """How many GPUs the driver sees."""

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        """The handle of GPU `index`."""

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        """Its utilization; `.gpu` is the percent of the last period it was busy."""

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        """Its memory; `.used` is in bytes."""


def system_metrics_interval(
    enabled: bool | None, interval_s: float | None, environ: Mapping[str, str] | None = None
) -> float | None:
    """The sampling interval of a run about to start, or None when system metrics are off.
    A None argument is read from LOOPLINE_SYSTEM_METRICS or LOOPLINE_SYSTEM_METRICS_INTERVAL.
    Raises InvalidInput for an interval that is not > 0, or when psutil is missing."""
    environ = os.environ if environ is None else environ
    if interval_s is not None:
        interval_s = _checked_interval(interval_s, "system_metrics_interval_s")
    if enabled is None:
        enabled = _flag(environ.get(ENABLED_VARIABLE, ""))
    if not enabled:
        return None
    if interval_s is None:
        raw = environ.get(INTERVAL_VARIABLE, "").strip()
        interval_s = _checked_interval(raw, INTERVAL_VARIABLE) if raw else DEFAULT_INTERVAL_S
    _import_psutil()
    return interval_s


class SystemMetricsSampler:
    """Logs the machine's `system/...` metrics to `run` every `interval_s` seconds from a
    daemon thread, and once more on `stop`.

    It never fails the training it watches: the first error while sampling or logging
    becomes a RuntimeWarning and ends the sampling. `nvml` stands in for the `pynvml`
    module (tests pass a fake); by default it is imported if installed. GPUs are skipped
    when NVML is missing or does not initialise."""

    def __init__(
        self, run: MetricLogger, interval_s: float = DEFAULT_INTERVAL_S, *, nvml: Nvml | None = None
    ) -> None:
        self._run = run
        self._interval_s = _checked_interval(interval_s, "system_metrics_interval_s")
        self._psutil = _import_psutil()
        self._nvml_given = nvml
        self._nvml: Nvml | None = None  # set once initialised, to be shut down
        self._gpus: dict[int, Any] = {}  # NVML device handles by index
        self._disk_start: Any = None
        self._network_start: Any = None
        self._step = 0
        self._failed = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> SystemMetricsSampler:
        """Take the starting counters and start the sampling thread; returns self."""
        if self._thread is not None:
            return self
        try:
            # cpu_percent compares with its previous call: this one makes the first sample meaningful
            self._psutil.cpu_percent(interval=None)
            self._disk_start = self._psutil.disk_io_counters()
            self._network_start = self._psutil.net_io_counters()
            self._gpus = self._open_gpus()
        except Exception as exc:
            self._fail(exc)
            return self
        self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, wait for it, and log a last sample; calling it again does nothing."""
        # A forked child inherits this object but not the thread: the parent's sampler is not its own.
        if self._thread is None or self._stopping.is_set() or os.getpid() != self._pid:
            return
        self._stopping.set()
        self._thread.join()
        self._sample_and_log()  # the run's last stretch, however short it was
        self._close_gpus()

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval_s):
            if not self._sample_and_log():
                return

    def _sample_and_log(self) -> bool:
        """One sample logged at the next step; False (after one warning) if that failed."""
        if self._failed:
            return False
        try:
            timestamp = time.time_ns() // 1_000_000
            self._run.log_metrics(self._read(), step=self._step, timestamp=timestamp)
        except Exception as exc:
            self._fail(exc)
            return False
        self._step += 1
        return True

    def _fail(self, exc: Exception) -> None:
        # Training matters more than its system metrics: say it once, and sample no more.
        self._failed = True
        self._close_gpus()
        warnings.warn(
            f"loopline system metrics: {type(exc).__name__}: {exc}; sampling stopped for this run",
            RuntimeWarning,
            stacklevel=2,
        )

    def _read(self) -> dict[str, float]:
        psutil = self._psutil
        memory = psutil.virtual_memory()
        values = {
            "system/cpu_percent": float(psutil.cpu_percent(interval=None)),
            "system/memory_used_mb": memory.used / _MB,
            "system/memory_percent": float(memory.percent),
        }
        # Either can be None (no disk or network device visible, as in some containers).
        disk = psutil.disk_io_counters()
        if disk is not None and self._disk_start is not None:
            values["system/disk_read_mb"] = _since(disk.read_bytes, self._disk_start.read_bytes)
            values["system/disk_write_mb"] = _since(disk.write_bytes, self._disk_start.write_bytes)
        network = psutil.net_io_counters()
        if network is not None and self._network_start is not None:
            values["system/network_receive_mb"] = _since(network.bytes_recv, self._network_start.bytes_recv)
            values["system/network_transmit_mb"] = _since(network.bytes_sent, self._network_start.bytes_sent)
        if self._nvml is not None:
            values.update(self._read_gpus(self._nvml))
        return values

    def _read_gpus(self, nvml: Nvml) -> dict[str, float]:
        values: dict[str, float] = {}
        for index, handle in list(self._gpus.items()):
            try:
                busy = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                used = nvml.nvmlDeviceGetMemoryInfo(handle).used
            except Exception as exc:
                # A GPU that stops answering (reset, fallen off the bus) must not end the
                # sampling of the machine and the other GPUs.
                log.debug("GPU %d no longer sampled: %s", index, exc)
                del self._gpus[index]
                continue
            values[f"system/gpu_{index}_utilization_percent"] = float(busy)
            values[f"system/gpu_{index}_memory_used_mb"] = used / _MB
        return values

    def _open_gpus(self) -> dict[int, Any]:
        """NVML's device handles by index; none when NVML is missing or finds no driver."""
        nvml = self._nvml_given
        if nvml is None:
            try:
                nvml = cast(Nvml, importlib.import_module("pynvml"))
            except ImportError:
                return {}
        try:
            nvml.nvmlInit()
        except Exception:  # no NVIDIA driver or GPU: most machines, and no reason to warn
            return {}
        self._nvml = nvml
        try:
            return {
                index: nvml.nvmlDeviceGetHandleByIndex(index) for index in range(nvml.nvmlDeviceGetCount())
            }
        except Exception as exc:
            log.debug("GPUs not sampled: %s", exc)
            self._close_gpus()
            return {}

    def _close_gpus(self) -> None:
        nvml, self._nvml, self._gpus = self._nvml, None, {}
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except Exception as exc:  # nothing is left to do with NVML either way
                log.debug("NVML shutdown failed: %s", exc)


def _since(now: int, start: int) -> float:
    # A device that disappears takes its bytes out of psutil's totals: never report a negative.
    return max(0, now - start) / _MB


def _checked_interval(value: float | str, name: str) -> float:
    try:
        # True would pass for 1 second: a flag given where the interval was meant
        seconds = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidInput(f"{name} must be a number of seconds greater than 0, got {value!r}")
    return seconds


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(f"{ENABLED_VARIABLE} must be 1 or 0 (or true/false), got {raw!r}")


def _import_psutil() -> ModuleType:
    try:
        return importlib.import_module("psutil")
    except ImportError:
        raise InvalidInput(
            "system metrics need psutil, which is not installed: pip install 'loopline[system]'"
        ) from None
