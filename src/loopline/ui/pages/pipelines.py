"""Pipelines: runs, schedules, triggers and jobs; and one pipeline run as a graph of its steps
with their status, cache hits, durations and logs."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopline.core.automation import JobStatus
from loopline.core.clock import now_ms
from loopline.core.entities import Run
from loopline.core.errors import NotFound, PermissionDenied
from loopline.core.pipelines import PipelineRun, StepRun, StepStatus
from loopline.ui.deps import Viewer
from loopline.ui.rendering import duration, render
from loopline.wiring.local import LocalServices

router = APIRouter()
LOG_NAME = "logs/step.log"  # where a step's captured output is stored on its tracked run
LOG_TAIL = 64 * 1024  # bytes of a step's log shown: its end, where failures are
MAX_STEP_RUNS = 1000
_INPUT = re.compile(r"<output of (.+)>")  # a step's tracked param naming the step it reads
COLOURS = {
    StepStatus.FINISHED: "#067647",
    StepStatus.CACHED: "#1f77b4",
    StepStatus.RUNNING: "#f79009",
    StepStatus.FAILED: "#b42318",
    StepStatus.SKIPPED: "#98a2b3",
}


@dataclass(frozen=True)
class StepView:
    """A step of a pipeline run as the page shows it."""

    step: StepRun
    upstream: list[str] | None  # the steps it reads; None when no tracked run says
    took: str
    log: str | None
    log_cut: bool

    @property
    def name(self) -> str:
        return self.step.name


@router.get("/pipelines")
def pipelines_page(request: Request, services: Viewer) -> Response:
    """Pipeline runs, newest first; schedules, triggers and the newest jobs."""
    automation = services.automation
    runs = automation.pipeline_runs(limit=100)
    jobs = automation.jobs(limit=100)
    busy = any(r.status == "RUNNING" for r in runs) or any(
        j.status in (JobStatus.QUEUED, JobStatus.RUNNING) for j in jobs
    )
    return render(
        request,
        "pipelines.html",
        runs=runs,
        schedules=automation.schedules(),
        triggers=automation.triggers(),
        jobs=jobs,
        busy=busy,
    )


@router.get("/pipelines/runs/{run_id}")
def pipeline_run_page(request: Request, services: Viewer, run_id: str) -> Response:
    """A pipeline run: its steps as a graph laid out by dependency depth and coloured by
    status, and a table of steps with their cache hits, durations and logs."""
    run = services.automation.pipeline_run(run_id)
    tracked = _tracked_steps(services, run)
    views = [_view(services, step, tracked) for step in run.steps]
    return render(
        request,
        "pipeline_run.html",
        run=run,
        steps=views,
        graph=_graph_figure(views) if views else None,
        live=run.status == "RUNNING",
        cached=sum(s.status is StepStatus.CACHED for s in run.steps),
    )


def _tracked_steps(services: LocalServices, run: PipelineRun) -> dict[str, Run]:
    """The tracked runs of the pipeline run's steps (its child runs), by id and by step name,
    so that a step still running, which has no run id on record yet, is found too."""
    tracking = services.tracking
    try:
        parent = tracking.get_run(run.id)
        experiment = tracking.get_experiment(parent.experiment_id)
        children = tracking.search_runs(
            experiment.id,
            project=experiment.project,
            filter=f"parent_run_id = '{run.id}'",
            max_results=MAX_STEP_RUNS,
        ).runs
    except (NotFound, PermissionDenied):
        return {}
    found: dict[str, Run] = {}
    for child in children:
        found[child.id] = child
        found.setdefault(f"name:{child.name}", child)
    return found


def _view(services: LocalServices, step: StepRun, tracked: dict[str, Run]) -> StepView:
    run = tracked.get(step.run_id) if step.run_id else tracked.get(f"name:{step.name}")
    if run is None and step.run_id:  # a cached step: its outputs are those of an earlier run
        try:
            run = services.tracking.get_run(step.run_id)
        except (NotFound, PermissionDenied):
            run = None
    upstream = None
    if run is not None:
        upstream = [m.group(1) for v in run.params.values() if (m := _INPUT.fullmatch(v))]
    log, cut = _log(services, step.run_id) if step.run_id and run is not None else (None, False)
    return StepView(step, upstream, _took(step), log, cut)


def _log(services: LocalServices, run_id: str) -> tuple[str | None, bool]:
    """The end of a step's captured output, and whether its start was cut off."""
    try:
        raw = services.tracking.read_artifact(run_id, LOG_NAME)
    except (NotFound, PermissionDenied):  # a step that printed nothing has no log
        return None, False
    cut = len(raw) > LOG_TAIL
    return raw[-LOG_TAIL:].decode("utf-8", errors="replace"), cut


def _took(step: StepRun) -> str:
    """How long the step ran, to the tenth of a second under a minute."""
    if step.status is StepStatus.CACHED:
        return "cached"
    if step.status is StepStatus.SKIPPED:
        return ""
    end = step.ended_at if step.ended_at is not None else now_ms()
    ms = max(0, end - step.started_at)
    text = f"{ms / 1000:.1f}s" if ms < 60_000 else duration(step.started_at, end)
    return text if step.ended_at is not None else f"{text} so far"


def _depths(views: list[StepView]) -> dict[str, int]:
    """Each step's column: 0 for a step that reads no other, else one past its deepest input.
    Steps are recorded as they start, so inputs come first; a step no tracked run describes
    (skipped after a failure) goes to a column after all the others."""
    depth: dict[str, int] = {}
    for view in views:
        if view.upstream is not None:
            depth[view.name] = 1 + max((depth[u] for u in view.upstream if u in depth), default=-1)
    last = max(depth.values(), default=-1) + 1
    return {v.name: depth.get(v.name, last) for v in views}


def _graph_figure(views: list[StepView]) -> dict[str, Any]:
    """The steps as nodes (x: dependency depth) coloured by status, edges as lines."""
    depth = _depths(views)
    columns: dict[int, list[str]] = {}
    for view in views:
        columns.setdefault(depth[view.name], []).append(view.name)
    place: dict[str, tuple[float, float]] = {}
    for x, names in columns.items():
        for i, name in enumerate(names):
            place[name] = (float(x), (len(names) - 1) / 2 - i)
    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    for view in views:
        for source in view.upstream or []:
            if source in place:
                edge_x += [place[source][0], place[view.name][0], None]
                edge_y += [place[source][1], place[view.name][1], None]
    traces: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "x": edge_x, "y": edge_y, "hoverinfo": "skip",
         "line": {"color": "#98a2b3", "width": 1.5}, "showlegend": False},
    ]  # fmt: skip
    for status in StepStatus:
        members = [v for v in views if v.step.status is status]
        if not members:
            continue
        # plotly reads tags in text: names go to it escaped, <br> is ours
        traces.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": status.value,
                "x": [place[v.name][0] for v in members],
                "y": [place[v.name][1] for v in members],
                "text": [f"{html.escape(v.name)}<br>{html.escape(v.took)}" for v in members],
                "textposition": "bottom center",
                "hovertext": [_hover(v) for v in members],
                "hoverinfo": "text",
                "marker": {
                    "size": 20,
                    "color": COLOURS[status],
                    "symbol": "diamond" if status is StepStatus.CACHED else "circle",
                    "line": {"color": "#1d2330", "width": 1},
                },
            }
        )
    tallest = max(len(names) for names in columns.values())
    return {
        "data": traces,
        "layout": {
            "height": max(240, 110 * tallest + 60),
            "margin": {"l": 20, "r": 20, "t": 20, "b": 20},
            "xaxis": {"visible": False, "range": [-0.5, max(columns) + 0.5]},
            "yaxis": {"visible": False, "range": [-tallest / 2 - 0.3, tallest / 2]},
            "hovermode": "closest",
            "legend": {"orientation": "h"},
        },
    }


def _hover(view: StepView) -> str:
    parts = [view.name, view.step.status.value, view.took]
    if view.upstream:
        parts.append("reads " + ", ".join(view.upstream))
    if view.step.error:
        parts.append(view.step.error[:200])
    return "<br>".join(html.escape(p) for p in parts if p)
