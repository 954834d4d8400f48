"""What a worker does with each job: run a monitor, start a retraining loop, run a pipeline,
materialize a feature view (in its process, or as a Ray task when the job asks), or collect
garbage as the retention policy says."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from loopline.automation.loops import LoopService
from loopline.automation.service import materialize_options
from loopline.core.automation import Job, JobKind
from loopline.services import Features, Materialized, Monitors, Storage

PipelineJob = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
"""Runs the pipeline MODULE:PIPELINE with these parameters; returns what the job records."""

MaterializeOnRay = Callable[[str, datetime | None, str], Materialized]
"""Materializes view `ref` up to `end` as a Ray task on the cluster at the address given,
opening the stores there from settings."""


def materialize_job(
    features: Features, on_ray: MaterializeOnRay, target: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Materialize feature view `target` as the job's params say (see `materialize_options`);
    returns what the job records."""
    options = materialize_options(params)
    if options.ray_address is None:
        done = features.materialize(target, end=options.end)
    else:
        done = on_ray(target, options.end, options.ray_address)
    return {
        "view": done.view,
        "since_us": done.since_us,
        "until_us": done.until_us,
        "keys_written": done.keys_written,
        "on": "local" if options.ray_address is None else "ray",
    }


def job_runner(
    monitors: Monitors,
    loops: LoopService,
    run_pipeline: PipelineJob,
    features: Features,
    materialize_on_ray: MaterializeOnRay,
    storage: Storage,
) -> Callable[[Job], dict[str, Any]]:
    """The function a worker calls with each job it claims; what it returns is recorded with
    the job, and what it raises fails the job."""

    def run(job: Job) -> dict[str, Any]:
        if job.kind is JobKind.RETRAIN:
            event = loops.start(job.target, job.reason, force=bool(job.params.get("force")))
            if event.kind == "failed":
                raise RuntimeError(event.message)
            return {"event": event.kind, "message": event.message}
        if job.kind is JobKind.MONITOR:
            outcome = monitors.run(job.target)
            return {
                "monitor_run": outcome.run.id,
                "opened_alerts": [a.id for a in outcome.opened],
                "resolved_alerts": [a.id for a in outcome.resolved],
            }
        if job.kind is JobKind.MATERIALIZE:
            return materialize_job(features, materialize_on_ray, job.target, job.params)
        if job.kind is JobKind.GC:
            return storage.gc().counts()
        return dict(run_pipeline(job.target, job.params))

    return run
