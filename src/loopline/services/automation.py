"""The automation service's interface: schedules, triggers, jobs and pipeline runs."""

from __future__ import annotations

from typing import Any, Protocol

from loopline.core.automation import Job, JobKind, Schedule, Trigger
from loopline.core.pipelines import PipelineRun


class Automation(Protocol):
    """What workers run: cron schedules, alert triggers and the job queue."""

    def create_schedule(
        self, name: str, cron: str, kind: JobKind, target: str, params: dict[str, Any] | None = None
    ) -> Schedule:
        """Run a pipeline or a monitor on a cron schedule (five fields, UTC)."""

    def create_trigger(
        self,
        name: str,
        monitor: str,
        kind: JobKind,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        rule: str | None = None,
        cooldown_s: int = 3600,
    ) -> Trigger:
        """Run a pipeline or a retraining loop when `monitor` opens an alert (of `rule`)."""

    def enqueue(self, kind: JobKind, target: str, params: dict[str, Any] | None = None) -> Job:
        """Queue a job for the next free worker."""

    def schedules(self) -> list[Schedule]:
        """Every schedule."""

    def triggers(self) -> list[Trigger]:
        """Every trigger."""

    def jobs(self, limit: int = 100) -> list[Job]:
        """The newest jobs first."""

    def pipeline_runs(self, pipeline: str | None = None, limit: int = 50) -> list[PipelineRun]:
        """The newest pipeline runs first (of one pipeline, or all)."""

    def pipeline_run(self, run_id: str) -> PipelineRun:
        """One pipeline run with its steps."""

    def delete_schedule(self, name: str) -> None:
        """Remove a schedule."""

    def delete_trigger(self, name: str) -> None:
        """Remove a trigger."""
