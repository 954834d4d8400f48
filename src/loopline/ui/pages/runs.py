"""Runs: the table of one or more experiments, a run's page, its artifacts, and the comparison."""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from loopline.core.access import Role
from loopline.core.entities import Experiment, Run
from loopline.core.errors import InvalidInput
from loopline.ui.artifacts import artifact_listing, artifact_preview, framed_artifact
from loopline.ui.columns import ATTRIBUTE_COLUMNS, Column, default_columns, offered_columns
from loopline.ui.deps import Viewer, permits
from loopline.ui.rendering import render
from loopline.wiring.local import LocalServices

router = APIRouter()
MAX_COMPARED = 200
SAMPLED_RUNS = 5


@router.get("/runs")
def runs_table(
    request: Request,
    services: Viewer,
    experiment: Annotated[list[int], Query(max_length=50)] = [],  # noqa: B006 (FastAPI copies it)
    filter: Annotated[str, Query(max_length=4000)] = "",
    order: Annotated[str, Query(max_length=500)] = "",
    column: Annotated[list[str], Query(max_length=100)] = [],  # noqa: B006
    page: Annotated[str | None, Query(max_length=2000)] = None,
    size: Annotated[int, Query(ge=10, le=500)] = 50,
) -> Response:
    """One page of runs, sorted and filtered by the store; children listed under their parent."""
    tracking = services.tracking
    shown = [tracking.get_experiment(e) for e in experiment] or tracking.list_experiments()
    ids, project = [e.id for e in shown], shown[0].project if shown else "default"
    # The keys offered as columns come from the newest few runs (any key can be typed):
    # the page itself brings only the values of the columns it shows.
    sample = tracking.search_runs(ids, project=project, max_results=SAMPLED_RUNS).runs if ids else []
    columns = [Column.parse(name) for name in column] or default_columns(sample)
    problem: str | None = None
    runs: list[Run] = []
    next_page: str | None = None
    try:
        found = tracking.search_runs(
            ids,
            project=project,
            filter=filter or None,
            order_by=order or None,
            max_results=size,
            page_token=page,
            columns=[c.projected for c in columns if c.projected],
        )
        runs, next_page = found.runs, found.next_page_token
    except InvalidInput as exc:  # a filter, an order-by or a page token that does not fit
        problem = str(exc)
    return render(
        request,
        "runs.html",
        experiments=shown,
        rows=_grouped(runs),
        columns=columns,
        attributes=[Column("attribute", key) for key in ATTRIBUTE_COLUMNS],
        offered=offered_columns(sample),
        filter=filter,
        order=order,
        problem=problem,
        next_page=next_page,
        page=page,
        size=size,
        can_edit=_can_edit(services, shown),
    )


def _grouped(runs: list[Run]) -> list[tuple[Run, int]]:
    """Runs in page order, each child right under its parent when both are on the page:
    (run, depth below the page's top-level runs)."""
    on_page = {run.id for run in runs}
    children: dict[str, list[Run]] = {}
    for run in runs:
        if run.parent_id in on_page:
            children.setdefault(run.parent_id, []).append(run)
    rows: list[tuple[Run, int]] = []

    def add(run: Run, depth: int) -> None:
        rows.append((run, depth))
        for child in children.get(run.id, []):
            add(child, depth + 1)

    for run in runs:
        if run.parent_id not in on_page:
            add(run, 0)
    return rows


def _can_edit(services: LocalServices, experiments: list[Experiment]) -> bool:
    """Whether the user may tag and delete runs of every experiment shown."""
    projects = {e.project for e in experiments}
    require = services.access.require
    return bool(projects) and all(permits(functools.partial(require, p, Role.EDITOR)) for p in projects)


@router.get("/runs/{run_id}")
def run_page(request: Request, services: Viewer, run_id: str) -> Response:
    """A run: source, params, tags, environment, charts of every metric, inputs, outputs,
    child runs and artifacts."""
    tracking = services.tracking
    run = tracking.get_run(run_id)
    experiment = tracking.get_experiment(run.experiment_id)
    children = tracking.search_runs(
        experiment.id, project=experiment.project, filter=f"parent_run_id = '{run.id}'", max_results=200
    ).runs
    outputs = [
        tuple(label.rsplit("/", 1))
        for node in services.lineage.downstream(("run", run.id), "model_version")
        for label in node.label.split(", ")
        if "/" in label
    ]
    return render(
        request,
        "run.html",
        run=run,
        experiment=experiment,
        children=children,
        inputs=tracking.inputs(run.id),
        outputs=outputs,
        artifacts=artifact_listing(tracking, run.id, ""),
        can_edit=_can_edit(services, [experiment]),
    )


@router.get("/runs/{run_id}/artifacts")
def artifacts_page(
    request: Request,
    services: Viewer,
    run_id: str,
    path: Annotated[str, Query(max_length=1024)] = "",
    name: Annotated[str | None, Query(max_length=1024)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """The artifact browser: a folder's entries and a preview of the chosen file."""
    tracking = services.tracking
    run = tracking.get_run(run_id)
    preview = artifact_preview(tracking, run.id, name, offset) if name else None
    return render(
        request,
        "artifacts.html",
        run=run,
        path=path,
        listing=artifact_listing(tracking, run.id, path),
        preview=preview,
    )


@router.get("/runs/{run_id}/artifact-frame")
def artifact_frame(services: Viewer, run_id: str, name: Annotated[str, Query(max_length=1024)]) -> Response:
    """An HTML, SVG or image artifact for a frame or <img>: sandboxed, with no rights on this origin."""
    return framed_artifact(services.tracking, run_id, name)


@router.get("/compare")
def compare(
    request: Request,
    services: Viewer,
    run: Annotated[list[str], Query(max_length=MAX_COMPARED)] = [],  # noqa: B006
    key: Annotated[str | None, Query(max_length=250)] = None,
) -> Response:
    """Runs side by side: overlaid curves of one metric, parallel coordinates, and a table of
    params and metrics with the differing rows marked."""
    tracking = services.tracking
    runs = [tracking.get_run(run_id) for run_id in dict.fromkeys(run)]
    if len(runs) < 2:
        raise InvalidInput("select at least two runs to compare")
    params = sorted({k for r in runs for k in r.params})
    metrics = sorted({k for r in runs for k in r.metrics})
    rows = [(f"params.{k}", [r.params.get(k) for r in runs]) for k in params] + [
        (f"metrics.{k}", [r.metrics.get(k) for r in runs]) for k in metrics
    ]
    return render(
        request,
        "compare.html",
        runs=runs,
        rows=[(label, values, len({repr(v) for v in values}) > 1) for label, values in rows],
        metrics=metrics,
        key=key if key in metrics else (metrics[0] if metrics else None),
        parallel=_parallel_figure(runs, params, metrics),
    )


def _parallel_figure(runs: list[Run], params: list[str], metrics: list[str]) -> dict[str, object]:
    """Parallel coordinates over numeric params and metrics (at most 30 axes); a text param
    becomes an axis of its distinct values. plotly reads a few HTML tags in text, so labels
    are escaped and show as typed."""
    dimensions = []
    for entity, keys in (("params", params), ("metrics", metrics)):
        for key in keys:
            values = [(r.params if entity == "params" else r.metrics).get(key) for r in runs]
            dimension = _dimension(html.escape(f"{entity}.{key}"), values)
            if dimension is not None:
                dimensions.append(dimension)
    return {
        "data": [{"type": "parcoords", "dimensions": dimensions[:30], "line": {"color": "#1f77b4"}}],
        "layout": {"height": 420, "margin": {"l": 80, "r": 80, "t": 60, "b": 30}},
    }


def _dimension(label: str, values: Sequence[object]) -> dict[str, object] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    try:
        numbers = [float(v) if v is not None else None for v in values]  # type: ignore[arg-type]
        return {"label": label, "values": numbers}
    except (TypeError, ValueError):
        levels = sorted({str(v) for v in present})[:50]
        index = {level: i for i, level in enumerate(levels)}
        return {
            "label": label,
            "values": [index.get(str(v)) if v is not None else None for v in values],
            "tickvals": list(range(len(levels))),
            "ticktext": [html.escape(level) for level in levels],
        }
