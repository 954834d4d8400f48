"""Monitors, their runs and alerts over HTTP."""

from __future__ import annotations

from pathlib import Path

from loopline.client.connection import ServerConnection, segment
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput
from loopline.core.monitoring import Alert, Forecast, Monitor, MonitorOutcome, MonitorRun
from loopline.core.wire import decode
from loopline.specs.monitor import MonitorSpec


def _monitor(name: str) -> str:
    return f"/monitors/{segment(name)}"


class RemoteMonitorService:
    """The server's monitors, as the token's owner. Monitors are created and run there: the
    server scores the reference data with the registered model (never a pickled one)."""

    def __init__(self, connection: ServerConnection, principal: Principal) -> None:
        self._connection = connection
        self.principal = principal

    def report_png(self, name: str, target: Path, run_id: int | None = None) -> None:
        from loopline.monitoring.report import report_png

        report_png(self, name, target, run_id)

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
        if trust:
            raise InvalidInput(
                "a server never loads a pickled (python_function) model for a client: create a monitor "
                "of such a model where the store is, with trust=True"
            )
        body = {
            "name": name, "deployment": deployment, "reference": reference, "target": target,
            "spec": None if spec is None else spec.model_dump(mode="json"), "replace": replace,
        }  # fmt: skip
        return decode(Monitor, self._connection.call("POST", "/monitors", json=body))

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

    def forecast(
        self, name: str, value: str, *, runs: int = 24, threshold: float | None = None, below: bool = True
    ) -> Forecast | None:
        params = {"value": value, "runs": runs, "threshold": threshold, "below": below}
        found = self._connection.call("GET", f"{_monitor(name)}/forecast", params=params)
        return None if found is None else decode(Forecast, found)

    def run(self, name: str, at_ms: int | None = None) -> MonitorOutcome:
        found = self._connection.call("POST", f"{_monitor(name)}/run", params={"at_ms": at_ms})
        return decode(MonitorOutcome, found)
