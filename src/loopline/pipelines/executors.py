"""Where steps run: in this process, in worker processes, or as Ray tasks.

Every executor takes tasks whose inputs are ready and hands back their results. A step
with a timeout never runs in this process: only a process of its own can be stopped when
the time is up, whatever the step is doing.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
import types
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from loopline.compute.ray_cluster import connect_ray
from loopline.core.entities import RunStatus
from loopline.core.errors import InvalidInput, NotFound
from loopline.pipelines.execution import StepEnvironment, StepResult, StepTask, run_step

EnvironmentFactory = Callable[[], StepEnvironment]  # picklable: opens the stores in a worker
EXECUTORS = ("local", "process", "ray")


class Executor(Protocol):
    def free(self) -> int:
        """How many more tasks may start now."""

    def running(self) -> int: ...

    def submit(self, task: StepTask) -> None: ...

    def wait(self) -> list[StepResult]:
        """Results of finished tasks; blocks until there is at least one if any is running."""

    def close(self) -> None: ...


def make_executor(
    kind: str,
    env: StepEnvironment,
    open_env: EnvironmentFactory | None,
    workers: int | None = None,
    ray_address: str | None = None,
) -> Executor:
    if workers is not None and workers < 1:
        raise InvalidInput(f"workers must be at least 1, got {workers}")
    if kind == "local":
        return InProcessExecutor(env, open_env)
    if open_env is None:
        raise InvalidInput(f"the {kind} executor needs a way to open the stores in its workers")
    if kind == "process":
        return ProcessExecutor(env, open_env, workers or max(1, multiprocessing.cpu_count()))
    if kind == "ray":
        return RayExecutor(open_env, ray_address or "local", workers)
    raise InvalidInput(f"executor {kind!r} is not one of {', '.join(EXECUTORS)}")


def _end_orphan(env: StepEnvironment, run_id: str | None, error: str) -> None:
    """End the tracked run of a step whose process was stopped before it could."""
    if run_id is None:
        return
    try:
        if not env.tracker.service.get_run(run_id).status.is_terminal:
            env.tracker.service.end_run(run_id, RunStatus.FAILED, error)
    except NotFound:
        pass


class InProcessExecutor:
    """Steps run one at a time in this process (so they see this process's state); steps
    with a timeout go to a single worker process."""

    def __init__(self, env: StepEnvironment, open_env: EnvironmentFactory | None) -> None:
        self._env = env
        self._open_env = open_env
        self._done: list[StepResult] = []
        self._isolated: ProcessExecutor | None = None

    def free(self) -> int:
        return 0 if self.running() else 1

    def running(self) -> int:
        return self._isolated.running() if self._isolated else 0

    def submit(self, task: StepTask) -> None:
        if task.step.options.timeout is None:
            self._done.append(run_step(self._env, task))
            return
        if self._open_env is None:
            raise InvalidInput(f"step {task.node} has a timeout, which needs a worker process")
        if self._isolated is None:
            self._isolated = ProcessExecutor(self._env, self._open_env, 1)
        self._isolated.submit(task)

    def wait(self) -> list[StepResult]:
        done, self._done = self._done, []
        if not done and self._isolated is not None and self._isolated.running():
            done = self._isolated.wait()
        return done

    def close(self) -> None:
        if self._isolated is not None:
            self._isolated.close()


def _process_main(payload: bytes, conn: Connection) -> None:
    import cloudpickle

    open_env, task, environ, cwd, path = cloudpickle.loads(payload)  # written by our own parent process
    os.environ.clear()  # the server process was forked earlier: take the caller's state of now
    os.environ.update(environ)
    os.chdir(cwd)
    sys.path[:] = path
    env = open_env()
    result = run_step(env, task, on_started=lambda run_id: conn.send(("started", run_id)))
    conn.send(("done", result))
    conn.close()


@contextlib.contextmanager
def _main_not_rerun() -> Iterator[None]:
    """multiprocessing would run the user's script (__main__) again in every worker, which
    starts the pipeline again unless the script guards it; the task carries all it needs."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


_START_ALLOWANCE_S = 60.0


class _Running:
    def __init__(self, task: StepTask, process: Any, conn: Connection) -> None:
        self.task = task
        self.process = process
        self.conn = conn
        self.run_id: str | None = None
        self.timeout = task.step.options.timeout
        # The step's clock starts once its run exists; starting a process may take a while
        # on a busy machine, and that is not the step's time.
        self.deadline = None if self.timeout is None else time.monotonic() + self.timeout + _START_ALLOWANCE_S

    def started(self, run_id: str) -> None:
        self.run_id = run_id
        if self.timeout is not None:
            self.deadline = time.monotonic() + self.timeout


class ProcessExecutor:
    """Each step in a fresh worker process (forked from a clean server process, so no open
    database connection or thread is inherited), up to `workers` at once."""

    def __init__(self, env: StepEnvironment, open_env: EnvironmentFactory, workers: int) -> None:
        if workers < 1:
            raise InvalidInput(f"workers must be at least 1, got {workers}")
        self._env = env
        self._open_env = open_env
        self._workers = workers
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["loopline.pipelines.execution", "pandas", "pyarrow"])
        self._running: dict[Connection, _Running] = {}

    def free(self) -> int:
        return self._workers - len(self._running)

    def running(self) -> int:
        return len(self._running)

    def submit(self, task: StepTask) -> None:
        import cloudpickle

        # a script's steps go by value
        payload = cloudpickle.dumps((self._open_env, task, dict(os.environ), os.getcwd(), list(sys.path)))
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_process_main, args=(payload, sender), name=f"loopline-step-{task.node}"
        )
        with _main_not_rerun():
            process.start()
        sender.close()
        self._running[receiver] = _Running(task, process, receiver)

    def wait(self) -> list[StepResult]:
        if not self._running:
            return []
        deadlines = [r.deadline for r in self._running.values() if r.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready = wait(list(self._running), timeout)
        results = []
        for conn in ready:
            assert isinstance(conn, Connection)
            results += self._receive(self._running[conn])
        now = time.monotonic()
        for running in list(self._running.values()):
            if running.deadline is not None and now >= running.deadline and running.conn in self._running:
                timeout_s = running.task.step.options.timeout
                results.append(
                    self._stop(running, f"StepTimeout: still running after {timeout_s:g}s; stopped")
                )
        return results

    def _receive(self, running: _Running) -> list[StepResult]:
        try:
            kind, payload = running.conn.recv()
        except (EOFError, OSError):  # the process died without a word
            running.process.join()
            return [
                self._stop(running, f"WorkerDied: the step's process exited with {running.process.exitcode}")
            ]
        if kind == "started":
            running.started(payload)
            return []
        self._forget(running)
        running.process.join()
        return [payload]

    def _stop(self, running: _Running, error: str) -> StepResult:
        if running.process.is_alive():
            running.process.kill()
        running.process.join()
        self._forget(running)
        _end_orphan(self._env, running.run_id, error)
        return StepResult(running.task.node, running.run_id, None, 1, error)

    def _forget(self, running: _Running) -> None:
        self._running.pop(running.conn, None)
        running.conn.close()

    def close(self) -> None:
        for running in list(self._running.values()):
            self._stop(running, "Cancelled: the pipeline stopped")


def _ray_main(open_env: EnvironmentFactory, task: StepTask) -> StepResult:
    return run_step(open_env(), task)


class RayExecutor:
    """Steps as Ray tasks on the cluster at `address` ("local" starts one in this process).
    The stores must be reachable from every node: PostgreSQL and S3 on a real cluster."""

    def __init__(self, open_env: EnvironmentFactory, address: str, workers: int | None) -> None:
        self._started_here = connect_ray(address, "running steps")
        import ray

        self._ray = ray
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        self._workers = workers or max(1, cpus)
        self._open_env = open_env
        self._remote = ray.remote(max_retries=0)(_ray_main)
        self._running: dict[Any, tuple[StepTask, float | None]] = {}

    def free(self) -> int:
        return self._workers - len(self._running)

    def running(self) -> int:
        return len(self._running)

    def submit(self, task: StepTask) -> None:
        timeout = task.step.options.timeout
        ref = self._remote.remote(self._open_env, task)
        self._running[ref] = (task, None if timeout is None else time.monotonic() + timeout)

    def wait(self) -> list[StepResult]:
        if not self._running:
            return []
        deadlines = [d for _, d in self._running.values() if d is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        results: list[StepResult] = []
        for ref in ready:
            task, _ = self._running.pop(ref)
            try:
                results.append(self._ray.get(ref))
            except Exception as exc:  # the task or its worker died
                results.append(
                    StepResult(task.node, None, None, 1, f"WorkerDied: {type(exc).__name__}: {exc}")
                )
        now = time.monotonic()
        for ref, (task, deadline) in list(self._running.items()):
            if deadline is not None and now >= deadline:
                self._ray.cancel(ref, force=True)
                del self._running[ref]
                timeout_s = task.step.options.timeout
                error = f"StepTimeout: still running after {timeout_s:g}s; stopped"
                results.append(StepResult(task.node, None, None, 1, error))
        return results

    def close(self) -> None:
        for ref in list(self._running):
            self._ray.cancel(ref, force=True)
        self._running.clear()
        if self._started_here:
            self._ray.shutdown()
