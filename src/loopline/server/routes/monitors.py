"""Monitors, their runs and reports, and alerts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from loopline.core.monitoring import Alert, Forecast, Monitor, MonitorRun
from loopline.server.deps import Backend, Caller, Id, Paging, page
from loopline.server.encoding import json_response
from loopline.server.schemas import (
    MonitorRunOutcome,
    NewMonitor,
    Page,
)
from loopline.specs.monitor import MonitorSpec

router = APIRouter()
Timestamp = Annotated[int | None, Query(ge=0, le=2**63 - 1)]


@router.get("/monitors", response_model=Page[Monitor], tags=["monitoring"])
def list_monitors(b: Backend, who: Caller, paging: Paging) -> Response:
    return json_response(page(b.services(who).monitors.list_all(), paging))


@router.get("/monitors/{name}", response_model=Monitor, tags=["monitoring"])
def get_monitor(b: Backend, who: Caller, name: str) -> Response:
    return json_response(b.services(who).monitors.get(name))


@router.get("/monitors/{name}/runs", response_model=Page[MonitorRun], tags=["monitoring"])
def monitor_runs(b: Backend, who: Caller, name: str, paging: Paging, details: bool = False) -> Response:
    """The newest first; `details` adds each run's per-column results."""
    return json_response(page(b.services(who).monitors.runs(name, paging.end + 1, details), paging))


@router.get("/monitors/{name}/runs/{run_id}", response_model=MonitorRun, tags=["monitoring"])
def monitor_run(b: Backend, who: Caller, name: str, run_id: Id) -> Response:
    return json_response(b.services(who).monitors.run_record(name, run_id))


@router.get("/monitors/{name}/forecast", response_model=Forecast | None, tags=["monitoring"])
def monitor_forecast(
    b: Backend, who: Caller, name: str, value: Annotated[str, Query(min_length=1, max_length=200)],
    runs: Annotated[int, Query(ge=6, le=1000)] = 24, threshold: float | None = None, below: bool = True,
) -> Response:  # fmt: skip
    """Where a monitored value is heading over the last `runs` runs, and when it crosses
    `threshold` (going down if `below`); null with too few runs."""
    found = b.services(who).monitors.forecast(name, value, runs=runs, threshold=threshold, below=below)
    return json_response(found)


@router.post("/monitors", response_model=Monitor, status_code=201, tags=["monitoring"])
async def create_monitor(b: Backend, who: Caller, body: NewMonitor) -> Response:
    """Watch a deployment against a dataset: the server scores the reference with the
    deployment's registered model (a pickled one is never loaded for a client)."""
    spec = None if body.spec is None else MonitorSpec.parse(body.spec, "the monitor spec")
    monitor = await run_in_threadpool(
        lambda: b.services(who).monitors.create(
            body.name, body.deployment, body.reference, target=body.target, spec=spec, replace=body.replace
        )
    )
    return json_response(monitor, 201)


@router.post("/monitors/{name}/run", response_model=MonitorRunOutcome, tags=["monitoring"])
async def run_monitor(b: Backend, who: Caller, name: str, at_ms: Timestamp = None) -> Response:
    """Evaluate the window now (or as of `at_ms`): the stored run and the alerts it opened,
    resolved or kept firing."""
    return json_response(await run_in_threadpool(b.services(who).monitors.run, name, at_ms))


@router.get(
    "/monitors/{name}/report",
    tags=["monitoring"],
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "the report"}},
)
def monitor_report(
    b: Backend,
    who: Caller,
    name: str,
    run_id: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    inline_js: bool = True,
) -> Response:
    """Self-contained by default; with `inline_js=false` the charts load plotly from its CDN."""
    return HTMLResponse(b.services(who).monitors.report_html(name, run_id, inline_js=inline_js))


@router.get("/alerts", response_model=Page[Alert], tags=["monitoring"])
def list_alerts(
    b: Backend, who: Caller, paging: Paging, monitor: str | None = None, status: str | None = None
) -> Response:
    return json_response(page(b.services(who).monitors.alerts(monitor, status), paging))
