"""Pipelines in the SDK: `@loopline.pipeline` functions run themselves with the SDK's stores.

@ll.step
def load(rows: int) -> pd.DataFrame: ...

@ll.pipeline
def training(rows: int = 1000):
    return train(load(rows))

result = training(rows=500)            # or training.run({"rows": 500}, executor="process")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from loopline import _sdk
from loopline.pipelines import tuning
from loopline.pipelines.definition import Pipeline
from loopline.pipelines.execution import StepEnvironment
from loopline.pipelines.runner import PipelineResult, PipelineRunner
from loopline.pipelines.tuning import Objective, TuningResult

if TYPE_CHECKING:
    from loopline.core.automation import Job
    from loopline.core.entities import Principal
    from loopline.services import Materialized
    from loopline.wiring.backends import Backends
    from loopline.wiring.local import LocalServices
    from loopline.wiring.settings import Settings


def step_environment() -> StepEnvironment:
    """The SDK's stores and tracker, for running steps in this process."""

    tracker = _sdk._current()
    backends: Backends = _sdk._backends_in_use()
    return StepEnvironment(tracker, backends.blobs, _sdk.registry_service(), backends.store.pipelines)


@dataclass(frozen=True)
class WorkerEnvironment:
    """Sent to worker processes and Ray tasks: opens the same stores there, once per process."""

    store_uri: str
    artifacts_uri: str

    @classmethod
    def of(cls, settings: Settings) -> WorkerEnvironment:
        return cls(settings.resolved_store_uri, settings.resolved_artifacts_uri)

    def __call__(self) -> StepEnvironment:
        current = _sdk._settings
        if current is None or (current.resolved_store_uri, current.resolved_artifacts_uri) != (
            self.store_uri,
            self.artifacts_uri,
        ):
            _sdk.configure(store_uri=self.store_uri, artifacts_uri=self.artifacts_uri)
        return step_environment()


def run_pipeline(target: str, params: Mapping[str, Any]) -> Any:
    """Run the pipeline `MODULE:PIPELINE` with the SDK's stores; returns its output."""
    from loopline.pipelines.definition import import_pipeline

    return runner().run(import_pipeline(target), params).output()


def worker_services(settings: Settings, backends: Backends) -> tuple[LocalServices, Callable[[Job], Any]]:
    """A worker's services on `backends` (as the store's owner) and its job runner. Pipelines
    (jobs, and the retraining loops') run in this process with the SDK's stores, from the
    modules `settings` allows."""
    from loopline.automation.jobs import job_runner
    from loopline.automation.service import check_pipeline_allowed
    from loopline.pipelines.definition import load_pipeline
    from loopline.wiring.backends import local_owner

    def run(target: str, params: Mapping[str, Any]) -> PipelineResult:
        check_pipeline_allowed(target, settings.allowed_pipeline_modules)
        backends.store.atomically(
            lambda: services.audit.record(
                "pipeline.run", f"pipeline:{target}", after={"params": dict(params)}
            )
        )
        pipeline = load_pipeline(target)
        WorkerEnvironment.of(settings)()  # the SDK's stores
        return runner().run(pipeline, params)

    def pipeline_job(target: str, params: Mapping[str, Any]) -> dict[str, Any]:
        result = run(target, params)
        return {"pipeline_run": result.id, "status": result.run.status}

    services = backends.services(local_owner(), lambda target, params: run(target, params).output())
    online = {} if backends.online_store is None else {"online_store": backends.online_store}
    # the Ray task writes to the online store this worker would write to
    on_ray = RayMaterialization(settings.model_copy(update=online), services.principal)
    return services, job_runner(
        services.monitors, services.loops, pipeline_job, services.features, on_ray, services.storage
    )


@dataclass(frozen=True)
class RayMaterialization:
    """Materializes a feature view as a Ray task acting as `principal`. Only `settings` go to
    the task, which opens the store and the online store from them in its Ray worker: open
    connections are never pickled."""

    settings: Settings
    principal: Principal

    def __call__(self, ref: str, end: datetime | None, address: str) -> Materialized:
        from loopline.compute.ray_cluster import run_task

        return run_task(
            address, "materializing features", _materialize_here, self.settings, self.principal, ref, end
        )


def _materialize_here(
    settings: Settings, principal: Principal, ref: str, end: datetime | None
) -> Materialized:
    """Runs in the Ray worker: the feature service over stores opened from `settings`."""
    from loopline.wiring.backends import open_backends

    backends = open_backends(settings)
    try:
        return backends.services(principal).features.materialize(ref, end=end)
    finally:
        backends.close()


def runner() -> PipelineRunner:
    settings = _sdk.current_settings()
    workers = WorkerEnvironment.of(settings)
    return PipelineRunner(step_environment(), workers)


class SdkPipeline(Pipeline):
    def __call__(self, **params: Any) -> PipelineResult:
        """Run the pipeline in this process with these parameters."""
        return self.run(params)

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        executor: str = "local",
        workers: int | None = None,
        cache: bool = True,
        resume: str | None = None,
        ray_address: str | None = None,
        experiment: str | int | None = None,
    ) -> PipelineResult:
        """Run it: `executor` is local (this process), process (a pool of worker processes
        for independent steps) or ray (`ray_address`, or "local" to start Ray here);
        `cache=False` recomputes every step; `resume` reuses what a failed run finished."""
        return runner().run(
            self,
            params,
            executor=executor,
            workers=workers,
            cache=cache,
            resume=resume,
            ray_address=ray_address,
            experiment=experiment,
        )


@overload
def pipeline(fn: Callable[..., Any], /) -> SdkPipeline: ...


@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[..., Any]], SdkPipeline]: ...


def pipeline(fn: Any = None, /, *, name: str | None = None) -> Any:
    """Declare a pipeline: a function that calls steps and returns one step's output."""
    if fn is None:
        return lambda f: SdkPipeline(f, name)
    return SdkPipeline(fn, name)


def tune(
    objective: Objective,
    *,
    n_trials: int,
    direction: str = "maximize",
    metric: str = "score",
    seed: int | None = None,
    pruner: str = "median",
    register: str | None = None,
    input_example: Any = None,
    ray_address: str | None = None,
    workers: int | None = None,
) -> TuningResult:
    """Hyperparameter search with Optuna, each trial a child run of the active run (a step's,
    say). `objective(trial)` returns a score or `(score, model)`; `register="name"` registers
    the best trial's model. `ray_address` ("local" starts Ray here) runs trials in parallel."""
    settings = _sdk.current_settings()
    return tuning.tune(
        _sdk._current(),
        objective,
        n_trials=n_trials,
        direction=direction,
        metric=metric,
        seed=seed,
        pruner=pruner,
        register=register,
        input_example=input_example,
        ray_address=ray_address,
        open_env=WorkerEnvironment.of(settings),
        workers=workers,
    )
