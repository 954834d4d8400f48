"""Monitors: every monitor with its last run and open alerts; one monitor's drift per column
over time, a column's distribution in the reference against a window, realized and estimated
performance over time, its alerts, and its full report in a sandboxed frame."""

from __future__ import annotations

import html
import itertools
import math
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from loopline.core.monitoring import MonitorRun
from loopline.profiling.drift import P_VALUE_TESTS
from loopline.ui.deps import Viewer
from loopline.ui.rendering import SANDBOXED_HEADERS, render, when

router = APIRouter()
# Legends under the plot, below the date axis's second line of labels.
LEGEND = {"orientation": "h", "y": -0.22, "yanchor": "top"}
MARGIN = {"l": 60, "r": 10, "t": 40, "b": 10}
RUNS = 100
RunId = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
PERFORMANCE = ("accuracy", "f1", "roc_auc", "rmse", "mae", "r2")  # perf.* realized, est.* estimated
OVERALL = ("drift.share", "drift.prediction", "drift.label", "errors.rate")
MAX_SCORE = 3.0  # drift scores above this are drawn as this (the hover says the real statistic)
# White below the threshold (score 1), orange to dark red above it.
SCORE_COLOURS = [[0.0, "#f7fbff"], [0.33, "#c6dbef"], [0.334, "#fdae6b"], [1.0, "#a50f15"]]
REPORT_HEADERS = {**SANDBOXED_HEADERS, "cache-control": "private, no-store"}


@router.get("/monitors")
def monitors_list(request: Request, services: Viewer) -> Response:
    """Every monitor the user sees: its deployment, last run and how many alerts are firing."""
    monitors = services.monitors
    shown = monitors.list_all()
    firing = Counter(alert.monitor for alert in monitors.alerts(status="firing")) if shown else Counter()
    rows = []
    for monitor in shown:
        last = monitors.runs(monitor.name, limit=1)
        rows.append((monitor, last[0] if last else None, firing[monitor.name]))
    return render(request, "monitors.html", rows=rows)


@router.get("/monitors/{name}")
def monitor_page(
    request: Request,
    services: Viewer,
    name: str,
    column: Annotated[str | None, Query(max_length=300)] = None,
    run: RunId = None,
) -> Response:
    """A monitor: drift per column over its last runs (a heat map), `column`'s distribution in
    the reference and in the window of `run` (the newest run with distributions by default),
    performance over time, its alerts and its full report."""
    monitors = services.monitors
    monitor = monitors.get(name)
    runs = monitors.runs(monitor.name, limit=RUNS, with_details=True)  # newest first
    chosen = _chosen(runs) if run is None else monitors.run_record(monitor.name, run)
    distributions = _distributions(chosen)
    shown = None if chosen is None else column if column is not None else _most_drifted(chosen, distributions)
    ordered = runs[::-1]
    return render(
        request,
        "monitor.html",
        monitor=monitor,
        runs=runs,
        chosen=chosen,
        columns=list(distributions),
        column=shown,
        distribution=distribution_figure(shown, distributions[shown]) if shown in distributions else None,
        heatmap=drift_heatmap(ordered),
        performance=values_figure(
            ordered, _performance_keys(ordered), "Realized (solid) and estimated (dashed) performance"
        ),
        overall=values_figure(
            ordered, [k for k in OVERALL if _present(ordered, k)], "Overall drift and errors"
        ),
        alerts=monitors.alerts(monitor.name),
    )


@router.get("/monitors/{name}/report")
def monitor_report(services: Viewer, name: str, run: RunId = None) -> Response:
    """The monitor's full HTML report, for a frame: sandboxed by its own policy, so its
    scripts run in an opaque origin with no rights on this server's pages or cookies."""
    page = services.monitors.report_html(name, run, inline_js=True)
    return HTMLResponse(page, headers=REPORT_HEADERS)


def _chosen(runs: list[MonitorRun]) -> MonitorRun | None:
    """The newest run whose window held distributions (else the newest run)."""
    with_data = [r for r in runs if r.details.get("histograms") or r.details.get("histograms_outputs")]
    found = with_data or runs
    return found[0] if found else None


def _distributions(run: MonitorRun | None) -> dict[str, dict[str, Any]]:
    """The reference and current shares the run stored, per input column and model output."""
    if run is None:
        return {}
    found = {**run.details.get("histograms", {}), **run.details.get("histograms_outputs", {})}
    return {name: h for name, h in found.items() if h.get("kind") in ("numeric", "categorical")}


def _most_drifted(run: MonitorRun | None, distributions: dict[str, Any]) -> str | None:
    """The column to show first: the one furthest past its threshold."""
    if run is None or not distributions:
        return None
    scored = [(score(d), d["column"]) for d in run.details.get("drift", []) if d["column"] in distributions]
    scored = [(s, c) for s, c in scored if s is not None]
    return max(scored)[1] if scored else next(iter(distributions))


def score(drift: dict[str, Any]) -> float | None:
    """A column's drift against its threshold, the same way for every test: 1 at the
    threshold, above 1 drifted (a p-value test's threshold over its p-value; a distance over
    its threshold)."""
    statistic, threshold = drift.get("statistic"), drift.get("threshold")
    if statistic is None or not threshold or not math.isfinite(statistic):
        return None
    if drift.get("test") in P_VALUE_TESTS:
        return float(threshold) / max(float(statistic), 1e-300)
    return float(statistic) / float(threshold)


def drift_heatmap(runs: list[MonitorRun]) -> dict[str, Any] | None:
    """A heat map of drift scores: a column per run (oldest first), a row per input column."""
    tested = [r for r in runs if r.details.get("drift")]
    if not tested:
        return None
    columns = list(dict.fromkeys(d["column"] for r in reversed(tested) for d in r.details["drift"]))
    by_run = [{d["column"]: d for d in r.details["drift"]} for r in tested]
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for column in columns:
        found = [run.get(column) for run in by_run]
        scores = [score(d) if d else None for d in found]
        z.append([min(s, MAX_SCORE) if s is not None else None for s in scores])
        text.append([plain(_hover(d)) for d in found])
    trace = {
        "type": "heatmap",
        "x": [f"{when(r.at)} (run {r.id})" for r in tested],
        "y": [plain(c) for c in columns],
        "z": z,
        "text": text,
        "hovertemplate": "%{y}<br>%{x}<br>%{text}<extra></extra>",
        "zmin": 0,
        "zmax": MAX_SCORE,
        "colorscale": SCORE_COLOURS,
        "colorbar": {"title": {"text": "score /<br>threshold"}},
        "xgap": 1,
        "ygap": 1,
    }
    layout = {
        "title": {
            "text": "Drift per column (1 = the test's threshold; above: drifted)",
            "font": {"size": 13},
        },
        "height": max(320, 60 + 18 * len(columns)),
        "margin": {"l": 160, "r": 10, "t": 40, "b": 90},
        "xaxis": {"type": "category"},
        "yaxis": {"autorange": "reversed"},
    }
    return {"data": [trace], "layout": layout}


def _hover(drift: dict[str, Any] | None) -> str:
    if drift is None:
        return "not tested"
    statistic = drift.get("statistic")
    shown = "n/a" if statistic is None else f"{statistic:.4g}"
    verdict = "drifted" if drift.get("drifted") else "no drift"
    return f"{drift.get('test')} = {shown} (threshold {drift.get('threshold')}): {verdict}"


def distribution_figure(column: str, histogram: dict[str, Any]) -> dict[str, Any]:
    """Overlaid bars of the shares of `column` in the reference and in the window."""
    if histogram["kind"] == "numeric":
        x: list[Any] = [(a + b) / 2 for a, b in itertools.pairwise(histogram["edges"])]
    else:
        x = [plain(str(c)) for c in histogram["categories"]]
    data = [
        {
            "type": "bar",
            "name": side,
            "x": x,
            "y": histogram[side],
            "marker": {"color": colour},
            "opacity": 0.6,
        }
        for side, colour in (("reference", "#7f7f7f"), ("current", "#1f77b4"))
    ]
    layout = {
        "title": {"text": f"{plain(column)}: reference against the window", "font": {"size": 13}},
        "barmode": "overlay",
        "height": 320,
        "yaxis": {"title": {"text": "share of rows"}},
        "legend": LEGEND,
        "margin": MARGIN,
    }
    return {"data": data, "layout": layout}


def _present(runs: list[MonitorRun], key: str) -> bool:
    return any(_finite(r.values.get(key)) is not None for r in runs)


def _performance_keys(runs: list[MonitorRun]) -> list[str]:
    keys = [f"{side}.{metric}" for metric in PERFORMANCE for side in ("perf", "est")]
    return [k for k in keys if _present(runs, k)]


def values_figure(runs: list[MonitorRun], keys: list[str], title: str) -> dict[str, Any] | None:
    """Lines of monitored values over the runs (oldest first); estimated ones dashed."""
    if not keys or not runs:
        return None
    x = [when(r.at) for r in runs]
    mode = "lines+markers" if len(runs) <= 60 else "lines"
    data = [
        {
            "type": "scatter",
            "name": key,
            "x": x,
            "y": [_finite(r.values.get(key)) for r in runs],
            "mode": mode,
            "line": {"dash": "dash" if key.startswith("est.") else "solid"},
        }
        for key in keys
    ]
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "height": 320,
        "xaxis": {"type": "date"},
        "legend": LEGEND,
        "margin": MARGIN,
    }
    return {"data": data, "layout": layout}


def plain(text: str) -> str:
    """`text` for plotly, which reads a few HTML tags in labels: entities show as characters,
    so a column or category named like a tag is shown as it is, never followed."""
    return html.escape(text, quote=False)


def _finite(value: float | None) -> float | None:
    """A number plotly's JSON can carry (NaN is not JSON)."""
    return value if value is not None and math.isfinite(value) else None
