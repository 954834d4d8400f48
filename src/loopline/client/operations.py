"""Deployments, monitors and automation over HTTP: the same methods as in process, where
the work can happen on the server; the rest is refused with the reason."""

from __future__ import annotations

from typing import Any

from loopline.automation.service import AutomationService
from loopline.client.connection import ServerConnection, segment
from loopline.client.governance import server_only
from loopline.client.registry import RemoteRegistryService
from loopline.client.tracking import whoami
from loopline.core.automation import Job, JobKind, Schedule, Trigger
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput
from loopline.core.monitoring import Alert, Monitor, MonitorRun
from loopline.core.pipelines import PipelineRun
from loopline.core.registry import Deployment, DeploymentRevision
from loopline.core.wire import decode
from loopline.monitoring.service import MonitorOutcome, MonitorService, Reference
from loopline.monitoring.spec import MonitorSpec
from loopline.serving.deployments import DeploymentService
from loopline.serving.policy import TrafficPolicy


def _deployment(name: str) -> str:
    return f"/deployments/{segment(name)}"


def _monitor(name: str) -> str:
    return f"/monitors/{segment(name)}"


class RemoteDeploymentService(DeploymentService):
    def __init__(self, connection: ServerConnection, principal: Principal | None = None) -> None:
        self._connection = connection
        self.principal = principal or whoami(connection)
        self.registry = RemoteRegistryService(connection, self.principal)

    # Built only on the methods below and the remote registry's.
    resolve = DeploymentService.resolve
    policy = DeploymentService.policy
    for_model = DeploymentService.for_model

    def create(self, name: str, policy: TrafficPolicy, reason: str = "") -> Deployment:
        body = {"name": name, "policy": policy.to_dict(), "reason": reason}
        return decode(Deployment, self._connection.call("POST", "/deployments", json=body))

    def get(self, name: str) -> Deployment:
        return decode(Deployment, self._connection.call("GET", _deployment(name)))

    def list_all(self) -> list[Deployment]:
        return [decode(Deployment, d) for d in self._connection.pages("/deployments")]

    def set_traffic(
        self, name: str, policy: TrafficPolicy, reason: str = "", expected_revision: int | None = None
    ) -> Deployment:
        body = {"policy": policy.to_dict(), "reason": reason, "expected_revision": expected_revision}
        return decode(Deployment, self._connection.call("PUT", f"{_deployment(name)}/traffic", json=body))

    def revisions(self, name: str) -> list[DeploymentRevision]:
        found = self._connection.pages(f"{_deployment(name)}/revisions")
        return [decode(DeploymentRevision, r) for r in found]

    def rollback(self, name: str, reason: str = "") -> Deployment:
        path = f"{_deployment(name)}/rollback"
        return decode(Deployment, self._connection.call("POST", path, params={"reason": reason}))

    def delete(self, name: str) -> None:
        self._connection.call("DELETE", _deployment(name))


class RemoteMonitorService(MonitorService):
    def __init__(self, connection: ServerConnection, principal: Principal | None = None) -> None:
        self._connection = connection
        self.principal = principal or whoami(connection)

    # Renders here from the records the methods below fetch.
    report_png = MonitorService.report_png

    def create(
        self,
        name: str,
        deployment: str,
        reference: str,
        *,
        target: str | None = None,
        spec: MonitorSpec | None = None,
        replace: bool = False,
        trust: bool = False,
    ) -> Monitor:
        # The reference is computed by scoring the dataset with the model: a server must not
        # load a model for a client, so monitors are created where the store is.
        raise server_only("creating a monitor (it scores the reference data with the model)")

    def reference(self, monitor: Monitor) -> Reference:
        raise server_only("reading a monitor's reference profiles")

    def get(self, name: str) -> Monitor:
        return decode(Monitor, self._connection.call("GET", _monitor(name)))

    def list_all(self) -> list[Monitor]:
        return [decode(Monitor, m) for m in self._connection.pages("/monitors")]

    def runs(self, name: str, limit: int = 100, with_details: bool = False) -> list[MonitorRun]:
        params = {"max_results": limit, "details": with_details}
        found = self._connection.call("GET", f"{_monitor(name)}/runs", params=params)
        return [decode(MonitorRun, r) for r in found["items"]]

    def run_record(self, name: str, run_id: int | None = None) -> MonitorRun:
        if run_id is None:
            newest = self.runs(name, 1)
            if not newest:
                raise InvalidInput(f"monitor {name!r} has not run yet: `loopline monitor run {name}`")
            run_id = newest[0].id
        return decode(MonitorRun, self._connection.call("GET", f"{_monitor(name)}/runs/{run_id}"))

    def alerts(self, name: str | None = None, status: str | None = None) -> list[Alert]:
        found = self._connection.pages("/alerts", params={"monitor": name, "status": status})
        return [decode(Alert, a) for a in found]

    def report_html(self, name: str, run_id: int | None = None, *, inline_js: bool = True) -> str:
        params = {"run_id": run_id, "inline_js": inline_js}
        return self._connection.text(f"{_monitor(name)}/report", params)

    def run(self, name: str, at_ms: int | None = None) -> MonitorOutcome:
        if at_ms is not None:
            raise server_only("running a monitor as of another time")
        return decode(MonitorOutcome, self._connection.call("POST", f"{_monitor(name)}/run"))


class RemoteAutomationService(AutomationService):
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
