"""The SDK's engine: active runs per context, the metric writer, and clean endings.

A run ends FINISHED when its block completes, FAILED with the traceback on an exception,
KILLED on Ctrl-C or SIGTERM. Buffered values are flushed in every case, and at interpreter
exit for runs started without a `with` block.
"""

from __future__ import annotations

import atexit
import contextvars
import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping
from types import FrameType, TracebackType
from typing import Any

from loopline.core.entities import DEFAULT_EXPERIMENT, DEFAULT_PROJECT, ExperimentRef, RunStatus
from loopline.core.errors import RunTerminated
from loopline.services import Registry, Tracking
from loopline.tracking.active_run import ActiveRun
from loopline.tracking.environment import capture_environment, capture_source
from loopline.tracking.heartbeat import Heartbeat
from loopline.tracking.system_metrics import system_metrics_interval
from loopline.tracking.writer import MetricWriter


class Tracker:
    def __init__(
        self,
        service: Tracking,
        *,
        registry: Registry | None = None,
        default_experiment: str = DEFAULT_EXPERIMENT,
        capture_context: bool = True,
    ) -> None:
        self.service = service
        self.registry = registry
        self.writer = MetricWriter(service.log_metric_batch)
        self._default_experiment = default_experiment
        self._capture_context = capture_context
        self._stack: contextvars.ContextVar[tuple[ActiveRun, ...]] = contextvars.ContextVar(
            f"loopline_runs_{id(self)}", default=()
        )
        self._open: dict[str, ActiveRun] = {}  # every unended run, across contexts
        self._heartbeat = Heartbeat(service.heartbeat, lambda: list(self._open))
        self._previous_sigterm: Any = None
        self._previous_excepthook: Any = None
        self._uncaught: BaseException | None = None
        atexit.register(self._at_exit)

    def start_run(
        self,
        experiment: ExperimentRef | None = None,
        *,
        project: str = DEFAULT_PROJECT,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        nested: bool = True,
        parent_id: str | None = None,
        system_metrics: bool | None = None,
        system_metrics_interval_s: float | None = None,
    ) -> ActiveRun:
        """Start a run; inside another active run it becomes its child unless `nested=False`.
        `parent_id` names a parent run started elsewhere (another process, say).
        `system_metrics` logs CPU, memory, disk, network and GPU use as `system/...` metrics
        every `system_metrics_interval_s` seconds; None reads LOOPLINE_SYSTEM_METRICS (off
        by default) and LOOPLINE_SYSTEM_METRICS_INTERVAL (10 by default)."""
        # checked before the run exists, so that a bad value leaves no run behind
        interval_s = system_metrics_interval(system_metrics, system_metrics_interval_s)
        parent = self.active_run() if nested and parent_id is None else None
        if experiment is None and parent_id is not None:
            experiment = self.service.get_run(parent_id).experiment_id
        elif experiment is None:
            experiment = parent.experiment_id if parent else self._default_experiment
        run = self.service.start_run(
            experiment,
            project=project,
            run_name=run_name,
            tags=tags,
            parent_id=parent_id or (parent.id if parent else None),
            source=capture_source() if self._capture_context else None,
            environment=capture_environment() if self._capture_context else None,
        )
        active = ActiveRun(self, run, system_metrics_interval_s=interval_s)
        self._open[active.id] = active
        self._heartbeat.beat_now()
        self._stack.set((*self._stack.get(), active))
        self._install_handlers()
        return active

    def active_run(self) -> ActiveRun | None:
        stack = self._stack.get()
        return stack[-1] if stack else None

    def forget(self, run: ActiveRun) -> None:
        """Called by a run as it ends."""
        self._open.pop(run.id, None)
        stack = self._stack.get()
        if run in stack:
            self._stack.set(tuple(r for r in stack if r is not run))
        if not self._open:
            self._restore_handlers()

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        """End open runs (as FINISHED), flush, and detach from the interpreter."""
        self._end_open_runs(RunStatus.FINISHED, None)
        self._heartbeat.stop()
        self.writer.close()
        self._restore_handlers()
        atexit.unregister(self._at_exit)

    # endings ---------------------------------------------------------------------------

    def terminated(self) -> None:
        """A run ended by SIGTERM: once none is left, die of the signal as the sender meant."""
        if not self._open:
            self.writer.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    def _end_open_runs(self, status: RunStatus, error: str | None) -> None:
        for run in list(self._open.values())[::-1]:  # children before parents
            run.end(status, error)

    def _at_exit(self) -> None:
        if self._uncaught is None:
            self._end_open_runs(RunStatus.FINISHED, None)
        elif isinstance(self._uncaught, KeyboardInterrupt | RunTerminated):
            self._end_open_runs(RunStatus.KILLED, f"{type(self._uncaught).__name__}: interrupted")
        else:
            self._end_open_runs(RunStatus.FAILED, "".join(traceback.format_exception(self._uncaught)))
        self.writer.close()

    def _on_sigterm(self, signum: int, _frame: FrameType | None) -> None:
        raise RunTerminated(f"signal {signum}")

    def _on_uncaught(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        self._uncaught = exc
        self._previous_excepthook(kind, exc, tb)

    def _install_handlers(self) -> None:
        if self._previous_excepthook is None:
            self._previous_excepthook = sys.excepthook
            sys.excepthook = self._on_uncaught
        # Only the main thread may set handlers; a handler the program set itself stays.
        if (
            self._previous_sigterm is None
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        ):
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _restore_handlers(self) -> None:
        if self._previous_excepthook is not None and sys.excepthook == self._on_uncaught:
            sys.excepthook = self._previous_excepthook
            self._previous_excepthook = None
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
