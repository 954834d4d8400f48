"""Running a pipeline: its graph, step by step as inputs become ready, reusing the outputs
of unchanged steps, recording every step, and stopping cleanly when one fails."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.core.clock import now_ms
from loopline.core.entities import RunStatus
from loopline.core.errors import InvalidInput, LooplineError
from loopline.core.pipelines import OutputRef, PipelineRun, StepRun, StepStatus
from loopline.pipelines.definition import Graph, Node, Pipeline, Placeholder
from loopline.pipelines.execution import StepEnvironment, StepResult, StepTask, param_text
from loopline.pipelines.outputs import fingerprint, load_output, output_exists
from loopline.tracking.environment import entry_point

if TYPE_CHECKING:
    from loopline.pipelines.executors import EnvironmentFactory

PIPELINE_TAG = "loopline.pipeline"


class PipelineFailed(LooplineError):
    """A pipeline run failed: the message names each failed step and how to resume."""

    def __init__(self, run: PipelineRun) -> None:
        self.run = run
        failed = [s for s in run.steps if s.status is StepStatus.FAILED]
        lines = [f"pipeline {run.pipeline} failed (run {run.id}):"]
        lines += [f"  step {s.name}: {s.error}" for s in failed]
        skipped = [s.name for s in run.steps if s.status is StepStatus.SKIPPED]
        if skipped:
            lines.append(f"  not run: {', '.join(skipped)}")
        lines.append(f"fix it and resume from the failed step: loopline pipelines run ... --resume {run.id}")
        super().__init__("\n".join(lines))


@dataclass
class PipelineResult:
    """A finished pipeline run: its steps and their outputs."""

    run: PipelineRun
    _env: StepEnvironment = field(repr=False)
    _result_node: str | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        """The pipeline run's id (also the id of its tracked run)."""
        return self.run.id

    def step(self, name: str) -> StepRun:
        """The record of step `name` of this run: status, timing, output, error."""
        for step in self.run.steps:
            if step.name == name:
                return step
        raise InvalidInput(f"pipeline run {self.run.id} has no step {name!r}")

    def output(self, step: str | None = None) -> Any:
        """The output of `step`, or of the step the pipeline function returned."""
        name = step or self._result_node
        if name is None:
            return None
        ref = self.step(name).output
        return None if ref is None else load_output(ref, self._env.blobs, self._env.registry)


class PipelineRunner:
    """Runs pipelines with the stores of `env`; `open_env` opens them again in worker
    processes (needed by the process and Ray executors and by steps with a timeout)."""

    def __init__(self, env: StepEnvironment, open_env: EnvironmentFactory | None = None) -> None:
        self._env = env
        self._open_env = open_env

    def run(
        self, pipeline: Pipeline, params: Mapping[str, Any] | None = None, **options: Any
    ) -> PipelineResult:
        """Run `pipeline` (options: executor, workers, cache, resume, ray_address, experiment).
        Its runs record the pipeline's module as their entry point, and that module's
        repository as their commit, whatever process runs it (the CLI, a worker)."""
        with entry_point(_source_file(pipeline)):
            return self._run(pipeline, params, **options)

    def _run(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any] | None = None,
        *,
        executor: str = "local",
        workers: int | None = None,
        cache: bool = True,
        resume: str | None = None,
        ray_address: str | None = None,
        experiment: str | int | None = None,
    ) -> PipelineResult:
        from loopline.pipelines.executors import make_executor  # multiprocessing: loaded when used

        params = pipeline.parameters(params or {})
        graph = pipeline.trace(params)
        previous = self._resumable(pipeline, resume)
        # Digests of every constant, once (a DataFrame can be large and passed to many steps);
        # what cannot be hashed is refused before any work starts.
        seen: dict[int, str] = {}  # id -> digest; the values stay alive in `params` and `graph`

        def digest(value: Any, where: str) -> str:
            if id(value) not in seen:
                seen[id(value)] = fingerprint(value, where)
            return seen[id(value)]

        keys = {name: digest(value, f"pipeline parameter {name}") for name, value in params.items()}
        constants = {
            (node.name, argument): digest(value, f"step {node.name}, argument {argument}")
            for node in graph.nodes.values()
            for argument, value in node.arguments.items()
            if not isinstance(value, Placeholder)
        }
        runner = make_executor(executor, self._env, self._open_env, workers, ray_address)
        tracker = self._env.tracker
        parent = tracker.start_run(
            experiment if experiment is not None else pipeline.name,
            run_name=pipeline.name,
            tags={PIPELINE_TAG: pipeline.name, "loopline.executor": executor},
            nested=False,
        )
        with parent:
            parent.log_params({name: param_text(value) for name, value in params.items()})
            parent.set_tag("loopline.parameter_digests", ",".join(f"{k}:{v[:12]}" for k, v in keys.items()))
            record = PipelineRun(
                parent.id, pipeline.name, "RUNNING", executor, dict(params), now_ms(), None, resume
            )
            self._env.pipelines.start_run(record)
            scheduler = _Scheduler(
                self._env, graph, parent.id, parent.experiment_id, cache, previous, constants
            )
            try:
                scheduler.drive(runner)
            except BaseException:  # interrupted, or the store failed: the records must still end
                scheduler.abandon()
                self._env.pipelines.end_run(parent.id, "FAILED", now_ms())
                raise
            finally:
                runner.close()
                self._end_orphans(parent.id, parent.experiment_id)
            failed = scheduler.failed
            self._env.pipelines.end_run(parent.id, "FAILED" if failed else "FINISHED", now_ms())
            done = self._env.pipelines.get_run(parent.id)
            parent.log_metrics(
                {
                    "steps_run": sum(s.status is StepStatus.FINISHED for s in done.steps),
                    "steps_cached": sum(s.status is StepStatus.CACHED for s in done.steps),
                }
            )
            if failed:
                raise PipelineFailed(done)
        result = graph.result.node if isinstance(graph.result, Placeholder) else None
        return PipelineResult(done, self._env, result)

    def _resumable(self, pipeline: Pipeline, resume: str | None) -> dict[str, StepRun]:
        if resume is None:
            return {}
        earlier = self._env.pipelines.get_run(resume)
        if earlier.pipeline != pipeline.name:
            raise InvalidInput(f"run {resume} is of pipeline {earlier.pipeline}, not {pipeline.name}")
        return {s.name: s for s in earlier.steps if s.output is not None}

    def _end_orphans(self, parent_id: str, experiment_id: int) -> None:
        """Step runs left RUNNING by a worker that was stopped (a timeout on Ray, say)."""
        service = self._env.tracker.service
        running = f"parent_run_id = '{parent_id}' and status = 'RUNNING'"
        for run in service.search_runs([experiment_id], filter=running, max_results=1000):
            service.end_run(run.id, RunStatus.FAILED, "stopped with its pipeline")


class _Scheduler:
    """Starts each node once its inputs exist, as capacity allows; records every outcome."""

    def __init__(
        self,
        env: StepEnvironment,
        graph: Graph,
        run_id: str,
        experiment_id: int,
        cache: bool,
        previous: dict[str, StepRun],
        constants: dict[tuple[str, str], str],  # (node, argument) -> digest of a constant argument
    ) -> None:
        self._env = env
        self._constants = constants
        self._graph = graph
        self._run_id = run_id
        self._experiment_id = experiment_id
        self._cache = cache
        self._previous = previous
        self._pending = list(graph.nodes)
        self._outputs: dict[str, OutputRef] = {}
        self._started: dict[str, StepRun] = {}
        self.failed: set[str] = set()  # failed or not run because an upstream step failed

    def drive(self, executor: Any) -> None:
        while self._pending or executor.running():
            self._start_ready(executor)
            for result in executor.wait():
                self._finish(result)
            if self._pending and not executor.running() and not self._startable():
                raise AssertionError(f"pipeline graph is stuck at {self._pending}")  # cannot happen

    def abandon(self) -> None:
        """Mark the steps that were running as failed: the pipeline stopped around them."""
        for started in list(self._started.values()):
            self._finish(StepResult(started.name, started.run_id, None, 0, "Cancelled: the pipeline stopped"))

    def _startable(self) -> bool:
        return any(all(u in self._outputs or u in self.failed for u in self._graph.nodes[n].upstream)
                   for n in self._pending)  # fmt: skip

    def _start_ready(self, executor: Any) -> None:
        for name in list(self._pending):
            node = self._graph.nodes[name]
            if any(u in self.failed for u in node.upstream):
                self._pending.remove(name)
                self._record(node, StepStatus.SKIPPED, "", error="an upstream step failed")
                self.failed.add(name)
                continue
            if not all(u in self._outputs for u in node.upstream):
                continue
            key = self._cache_key(node)
            reused = self._reusable(node, key)
            if reused is not None:
                self._pending.remove(name)
                self._outputs[name] = reused.output  # type: ignore[assignment]
                self._record(node, StepStatus.CACHED, key, run_id=reused.run_id, output=reused.output)
                continue
            if executor.free() <= 0:
                return
            self._pending.remove(name)
            self._started[name] = self._record(node, StepStatus.RUNNING, key)
            constants = {k: v for k, v in node.arguments.items() if not isinstance(v, Placeholder)}
            inputs = {
                k: (v.node, self._outputs[v.node])
                for k, v in node.arguments.items()
                if isinstance(v, Placeholder)
            }
            executor.submit(StepTask(name, node.step, self._experiment_id, self._run_id, constants, inputs))

    def _cache_key(self, node: Node) -> str:
        digest = hashlib.sha256(node.step.code_digest.encode())
        for argument, value in sorted(node.arguments.items()):
            if isinstance(value, Placeholder):
                part = f"output:{self._outputs[value.node].digest}"
            else:
                part = f"value:{self._constants[(node.name, argument)]}"
            digest.update(f"\0{argument}={part}".encode())
        return digest.hexdigest()

    def _reusable(self, node: Node, key: str) -> StepRun | None:
        earlier = self._previous.get(node.name)
        if earlier is None or earlier.cache_key != key:
            earlier = self._env.pipelines.cached(key) if self._cache and node.step.options.cache else None
        if earlier is None or earlier.output is None:
            return None
        return earlier if output_exists(earlier.output, self._env.blobs, self._env.registry) else None

    def _record(
        self,
        node: Node,
        status: StepStatus,
        key: str,
        *,
        run_id: str | None = None,
        output: OutputRef | None = None,
        error: str | None = None,
    ) -> StepRun:
        at = now_ms()
        step = StepRun(
            self._run_id,
            node.name,
            node.step.qualname,
            status,
            key,
            run_id,
            output,
            0,
            at,
            None if status is StepStatus.RUNNING else at,
            error,
        )
        self._env.pipelines.begin_step(step)
        return step

    def _finish(self, result: StepResult) -> None:
        started = self._started.pop(result.node)
        status = StepStatus.FAILED if result.error else StepStatus.FINISHED
        if result.error:
            self.failed.add(result.node)
        else:
            assert result.output is not None
            self._outputs[result.node] = result.output
        self._env.pipelines.finish_step(
            StepRun(
                started.pipeline_run_id,
                started.name,
                started.step,
                status,
                started.cache_key,
                result.run_id,
                result.output,
                result.attempts,
                started.started_at,
                now_ms(),
                result.error,
            )
        )


def _source_file(pipeline: Pipeline) -> str | None:
    """The file the pipeline's function is written in, if it has one."""
    try:
        return inspect.getsourcefile(pipeline.fn)
    except TypeError:  # built in, or made at run time
        return None
