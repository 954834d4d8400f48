"""Schedules, triggers, jobs and pipeline runs over HTTP."""

from __future__ import annotations

from typing import Any

from loopline.client.connection import ServerConnection, segment
from loopline.core.automation import Job, JobKind, Schedule, Trigger
from loopline.core.pipelines import PipelineRun
from loopline.core.wire import decode


class RemoteAutomationService:
    """Schedules, triggers, jobs and pipeline runs on the server."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    def create_schedule(
        self, name: str, cron: str, kind: JobKind, target: str, params: dict[str, Any] | None = None
    ) -> Schedule:
        body = {"name": name, "cron": cron, "kind": kind.value, "target": target, "params": params or {}}
        return decode(Schedule, self._connection.call("POST", "/schedules", json=body))

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
        body = {
            "name": name, "monitor": monitor, "kind": kind.value, "target": target,
            "params": params or {}, "rule": rule, "cooldown_s": cooldown_s,
        }  # fmt: skip
        return decode(Trigger, self._connection.call("POST", "/triggers", json=body))

    def enqueue(self, kind: JobKind, target: str, params: dict[str, Any] | None = None) -> Job:
        body = {"kind": kind.value, "target": target, "params": params or {}}
        return decode(Job, self._connection.call("POST", "/jobs", json=body))

    def schedules(self) -> list[Schedule]:
        return [decode(Schedule, s) for s in self._connection.pages("/schedules")]

    def triggers(self) -> list[Trigger]:
        return [decode(Trigger, t) for t in self._connection.pages("/triggers")]

    def jobs(self, limit: int = 100) -> list[Job]:
        found = self._connection.call("GET", "/jobs", params={"max_results": limit})
        return [decode(Job, j) for j in found["items"]]

    def pipeline_runs(self, pipeline: str | None = None, limit: int = 50) -> list[PipelineRun]:
        params = {"pipeline": pipeline, "max_results": limit}
        found = self._connection.call("GET", "/pipeline-runs", params=params)
        return [decode(PipelineRun, r) for r in found["items"]]

    def pipeline_run(self, run_id: str) -> PipelineRun:
        return decode(PipelineRun, self._connection.call("GET", f"/pipeline-runs/{segment(run_id)}"))

    def delete_schedule(self, name: str) -> None:
        self._connection.call("DELETE", f"/schedules/{segment(name)}")

    def delete_trigger(self, name: str) -> None:
        self._connection.call("DELETE", f"/triggers/{segment(name)}")
