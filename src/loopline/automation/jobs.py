"""What a worker does with each job: run a monitor, start a retraining loop, or run a pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loopline.automation.loops import LoopService
from loopline.core.automation import Job, JobKind
from loopline.services import Monitors

PipelineJob = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
"""Runs the pipeline MODULE:PIPELINE with these parameters; returns what the job records."""


def job_runner(
    monitors: Monitors, loops: LoopService, run_pipeline: PipelineJob
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
        return dict(run_pipeline(job.target, job.params))

    return run
