"""Monitor reports: one self-contained HTML page per run (Plotly), and a PNG summary
(matplotlib) for terminals and tickets.

The page shows the run's values, the drift score of every column against its threshold,
reference and current distributions of each column and of the model's output, and the
monitored values over the monitor's past runs, with the alerts of the period.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loopline.core.clock import ms_to_datetime
from loopline.core.monitoring import Alert, Monitor, MonitorRun
from loopline.services import Monitors

TRENDS = ("drift.share", "perf.accuracy", "est.accuracy", "perf.rmse", "latency.p95_ms", "errors.rate",
          "features.skew", "features.age_ratio")  # fmt: skip
MAX_OVERLAYS = 24


def _when(ms: int | None) -> str:
    return "" if ms is None else ms_to_datetime(ms).strftime("%Y-%m-%d %H:%M:%S UTC")


def _figures(run: MonitorRun, history: Sequence[MonitorRun]) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figures: list[tuple[str, Any]] = []
    drift = run.details.get("drift", [])
    if drift:
        scored = [d for d in drift if d["statistic"] is not None]
        bars = go.Figure(
            go.Bar(
                x=[d["column"] for d in scored],
                y=[d["statistic"] for d in scored],
                marker_color=["#d62728" if d["drifted"] else "#1f77b4" for d in scored],
                customdata=[[d["test"], d["threshold"]] for d in scored],
                hovertemplate=(
                    "%{x}: %{y:.4g}<br>test %{customdata[0]}, threshold %{customdata[1]}<extra></extra>"
                ),
            )
        )
        bars.update_layout(title="Drift score per column (red: drifted)", height=380, yaxis_title="statistic")
        figures.append(("drift", bars))
    histograms = {**run.details.get("histograms", {}), **run.details.get("histograms_outputs", {})}
    shown = [(name, h) for name, h in histograms.items() if h["kind"] != "empty"][:MAX_OVERLAYS]
    if shown:
        cols = 3
        rows = (len(shown) + cols - 1) // cols
        grid = make_subplots(rows=rows, cols=cols, subplot_titles=[name for name, _ in shown])
        for i, (_, h) in enumerate(shown):
            r, c = i // cols + 1, i % cols + 1
            if h["kind"] == "numeric":
                edges = h["edges"]
                x = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
            else:
                x = h["categories"]
            for side, color in (("reference", "#7f7f7f"), ("current", "#1f77b4")):
                grid.add_trace(
                    go.Bar(x=x, y=h[side], name=side, marker_color=color, opacity=0.6, showlegend=i == 0),
                    row=r,
                    col=c,
                )
        grid.update_layout(barmode="overlay", title="Reference and current distributions", height=280 * rows)
        figures.append(("distributions", grid))
    ordered = sorted(history, key=lambda h: h.at)
    trends = [k for k in TRENDS if any(h.values.get(k) is not None for h in ordered)]
    if len(ordered) > 1 and trends:
        over_time = make_subplots(rows=len(trends), cols=1, shared_xaxes=True, subplot_titles=trends)
        for i, key in enumerate(trends, start=1):
            over_time.add_trace(
                go.Scatter(
                    x=[ms_to_datetime(h.at) for h in ordered],
                    y=[h.values.get(key) for h in ordered],
                    mode="lines+markers",
                    name=key,
                ),
                row=i,
                col=1,
            )
        over_time.update_layout(title="Over the monitor's runs", height=220 * len(trends), showlegend=False)
        figures.append(("trends", over_time))
    return figures


def render_html(
    monitor: Monitor,
    run: MonitorRun,
    history: Sequence[MonitorRun],
    alerts: Sequence[Alert],
    inline_js: bool = True,
) -> str:
    """A self-contained page (Plotly's script inlined unless `inline_js` is False)."""
    figures = _figures(run, history)
    parts = []
    for i, (_, figure) in enumerate(figures):
        include: Any = (True if inline_js else "cdn") if i == 0 else False
        parts.append(figure.to_html(full_html=False, include_plotlyjs=include))
    values = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{'' if v is None else f'{v:.6g}'}</td></tr>"
        for k, v in sorted(run.values.items())
        if not k.startswith("drift.")
        or k in ("drift.share", "drift.columns", "drift.prediction", "drift.label")
    )
    alert_rows = "".join(
        f"<tr><td>{html.escape(a.severity)}</td><td>{html.escape(a.status)}</td><td>{html.escape(a.message)}</td>"
        f"<td>{_when(a.first_at)}</td><td>{_when(a.resolved_at)}</td></tr>"
        for a in alerts
    )
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in run.details.get("warnings", []))
    drifted = ", ".join(run.details.get("drifted_columns", [])) or "none"
    title = f"monitor {monitor.name}, run {run.id}"
    reference, model = (html.escape(str(run.details.get(k, ""))) for k in ("reference", "model"))
    alert_table = (
        "<table><tr><th>severity</th><th>status</th><th>what</th><th>since</th><th>resolved</th></tr>"
        f"{alert_rows}</table>"
        if alert_rows
        else "<p>none</p>"
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>deployment <b>{html.escape(monitor.deployment)}</b>; reference {reference}; model {model}<br>
window {_when(run.window_start)} to {_when(run.window_end)}, {run.rows:,} predictions;
run at {_when(run.at)}</p>
<p>drifted columns: <b>{html.escape(drifted)}</b></p>
{f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else ""}
<h2>Values</h2><table><tr><th>value</th><th>this window</th></tr>{values}</table>
{_features_html(run.details.get("features"))}
{"".join(parts)}
<h2>Alerts</h2>{alert_table}
</body></html>"""


def _features_html(found: dict[str, Any] | None) -> str:
    """The online features' freshness per view and the skew examples, for a deployment that
    declares features (empty otherwise)."""
    if not found:
        return ""
    fresh = "".join(
        f"<tr><td>{_cell(f['view'])}</td><td>{_cell(f['age_s'])}</td><td>{_cell(f['ttl_s'])}</td>"
        f"<td>{_cell(f['age_ratio'])}</td><td>{'stale' if f['stale'] else 'fresh'}</td></tr>"
        for f in found.get("freshness", [])
    )
    skew = found.get("skew") or {}
    examples = "".join(
        f"<tr><td>{_cell(json.dumps(e['entity']))}</td><td>{_cell(e['feature'])}</td>"
        f"<td>{_cell(e['served'])}</td><td>{_cell(e['offline'])}</td></tr>"
        for e in skew.get("examples", [])
    )
    compared = (
        f"<p>training/serving skew: {skew.get('mismatched_rows', 0)} of {skew.get('rows', 0)} sampled "
        "rows served values that offline retrieval does not give</p>"
    )
    return (
        "<h2>Online features</h2><table><tr><th>view</th><th>age (s)</th><th>ttl (s)</th><th>age / ttl</th>"
        f"<th></th></tr>{fresh}</table>"
        + (compared if skew else "")
        + (
            "<table><tr><th>entity</th><th>feature</th><th>served</th><th>offline</th></tr>"
            f"{examples}</table>"
            if examples
            else ""
        )
    )


def _cell(value: Any) -> str:
    return "" if value is None else html.escape(f"{value:.4g}" if isinstance(value, float) else str(value))


def render_png(monitor: Monitor, run: MonitorRun, history: Sequence[MonitorRun], target: Path) -> None:
    """Drift scores, the most drifted columns' distributions and the trend, in one image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drift = [d for d in run.details.get("drift", []) if d["statistic"] is not None]
    histograms = run.details.get("histograms", {})
    worst = [d["column"] for d in sorted(drift, key=lambda d: -d["statistic"]) if d["column"] in histograms][
        :3
    ]
    ordered = sorted(history, key=lambda h: h.at)
    figure, axes = plt.subplots(2, 3, figsize=(15, 8))
    ax = axes[0][0]
    ax.bar(
        [d["column"] for d in drift],
        [d["statistic"] for d in drift],
        color=["#d62728" if d["drifted"] else "#1f77b4" for d in drift],
    )
    ax.set_title("drift score per column")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    trend = axes[0][1]
    for key in ("drift.share", "perf.accuracy", "est.accuracy"):
        points = [(ms_to_datetime(h.at), h.values.get(key)) for h in ordered if h.values.get(key) is not None]
        if points:
            trend.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key)
    trend.set_title("over the runs")
    trend.legend(fontsize=7)
    trend.tick_params(axis="x", rotation=30, labelsize=7)
    axes[0][2].axis("off")
    axes[0][2].text(
        0,
        1,
        "\n".join(
            f"{k} = {v:.4g}"
            for k, v in sorted(run.values.items())
            if v is not None and not k.startswith("drift.")
        )[:1500],
        va="top",
        family="monospace",
        fontsize=8,
    )
    for ax, name in zip(axes[1], worst + [""] * (3 - len(worst)), strict=True):
        if not name:
            ax.axis("off")
            continue
        h = histograms[name]
        x = list(range(len(h["reference"]))) if h["kind"] != "numeric" else h["edges"][:-1]
        width = 0.8 if h["kind"] != "numeric" else (h["edges"][1] - h["edges"][0])
        ax.bar(x, h["reference"], width=width, alpha=0.5, label="reference", align="edge", color="#7f7f7f")
        ax.bar(x, h["current"], width=width, alpha=0.5, label="current", align="edge", color="#1f77b4")
        if h["kind"] != "numeric":
            ax.set_xticks(x, h["categories"], rotation=45, fontsize=7)
        ax.set_title(name)
        ax.legend(fontsize=7)
    figure.suptitle(f"monitor {monitor.name}, run {run.id}: {run.rows:,} predictions")
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    plt.close(figure)


def report_html(monitors: Monitors, name: str, run_id: int | None = None, *, inline_js: bool = True) -> str:
    """The HTML report of run `run_id` (the newest by default) of monitor `name`, from what
    `monitors` (on a store or through a server) returns."""
    run = monitors.run_record(name, run_id)
    history = [r for r in monitors.runs(name, 200) if r.at <= run.at]
    period = [a for a in monitors.alerts(name) if a.first_at <= run.at]
    return render_html(monitors.get(name), run, history, period, inline_js)


def report_png(monitors: Monitors, name: str, target: Path, run_id: int | None = None) -> None:
    """The report's figures as one PNG image at `target`."""
    run = monitors.run_record(name, run_id)
    render_png(monitors.get(name), run, [r for r in monitors.runs(name, 200) if r.at <= run.at], target)
