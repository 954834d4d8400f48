"""Running one step, wherever it runs: a tracked run, retries with backoff, captured logs,
and its output stored as a typed artifact."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from loopline.core.pipelines import OutputRef
from loopline.pipelines.definition import Step
from loopline.pipelines.outputs import load_output, store_output

if TYPE_CHECKING:
    from loopline.artifacts import BlobStore
    from loopline.services import Registry
    from loopline.store import PipelineStore
    from loopline.tracking.tracker import Tracker


@dataclass
class StepEnvironment:
    """What running pipelines needs in a process: made once per worker process."""

    tracker: Tracker
    blobs: BlobStore
    registry: Registry
    pipelines: PipelineStore


@dataclass(frozen=True)
class StepTask:
    node: str
    step: Step[Any, Any]
    experiment_id: int
    pipeline_run_id: str
    constants: dict[str, Any]
    inputs: dict[str, tuple[str, OutputRef]]  # parameter -> (upstream node, its output)


@dataclass(frozen=True)
class StepResult:
    node: str
    run_id: str | None
    output: OutputRef | None
    attempts: int
    error: str | None = None


def run_step(
    env: StepEnvironment, task: StepTask, on_started: Callable[[str], None] | None = None
) -> StepResult:
    """Run `task` as a child run of its pipeline run. Failures are returned, not raised."""
    options = task.step.options
    attempts = 0
    run_id: str | None = None
    log = _Log()
    try:
        kwargs = dict(task.constants)
        for name, (_, ref) in task.inputs.items():
            kwargs[name] = load_output(ref, env.blobs, env.registry)
        tags = {"loopline.step": task.step.qualname, "loopline.pipeline_run": task.pipeline_run_id}
        run = env.tracker.start_run(
            task.experiment_id, run_name=task.node, tags=tags, parent_id=task.pipeline_run_id
        )
        run_id = run.id
        if on_started is not None:
            on_started(run.id)
        with run:
            run.log_params(_describe(task))
            started = time.perf_counter()
            try:
                while True:
                    attempts += 1
                    try:
                        with log.capture():
                            value = task.step.fn(**kwargs)
                        break
                    except Exception:
                        log.write(f"attempt {attempts} failed:\n{traceback.format_exc()}")
                        if attempts > options.retries:
                            raise
                        delay = options.retry_delay * options.backoff ** (attempts - 1)
                        log.write(f"retrying in {delay:.1f}s\n")
                        time.sleep(delay)
                output = store_output(value, task.node, run.id, env.tracker.service)
                run.log_metrics({"duration_s": time.perf_counter() - started, "attempts": attempts})
            finally:
                if log.text:
                    run.log_text(log.text, "logs/step.log")
        return StepResult(task.node, run_id, output, attempts)
    except Exception as exc:
        return StepResult(task.node, run_id, None, attempts, f"{type(exc).__name__}: {exc}")


def param_text(value: Any) -> str:
    """A value as a run param: its repr, or its type when that is too long to be useful."""
    text = repr(value)
    return text if len(text) <= 250 else f"<{type(value).__name__}>"


def _describe(task: StepTask) -> dict[str, str]:
    """The step's arguments as run params: constants by value, inputs by their step."""
    params = {name: f"<output of {node}>" for name, (node, _) in task.inputs.items()}
    params.update({name: param_text(value) for name, value in task.constants.items()})
    return params


class _Tee(io.TextIOBase):
    def __init__(self, *targets: TextIO) -> None:
        self._targets = targets

    def write(self, text: str) -> int:
        for target in self._targets:
            target.write(text)
        return len(text)

    def flush(self) -> None:
        for target in self._targets:
            target.flush()


class _Log:
    """What a step prints and logs, kept for its run while still shown as usual."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()

    @property
    def text(self) -> str:
        return self._buffer.getvalue()

    def write(self, text: str) -> None:
        self._buffer.write(text)

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        handler = logging.StreamHandler(self._buffer)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        with (
            contextlib.redirect_stdout(_Tee(sys.stdout, self._buffer)),
            contextlib.redirect_stderr(_Tee(sys.stderr, self._buffer)),
        ):
            try:
                yield
            finally:
                root.removeHandler(handler)
