"""Rich rendering of entities for people; `--json` output bypasses this."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from loopline.core.clock import ms_to_datetime
from loopline.core.entities import Experiment, Metric, Run

_STATUS_STYLE = {"FINISHED": "green", "FAILED": "red", "KILLED": "yellow", "RUNNING": "cyan"}


def when(ms: int | None, compact: bool = False) -> str:
    if ms is None:
        return ""
    return ms_to_datetime(ms).strftime("%m-%d %H:%M" if compact else "%Y-%m-%d %H:%M:%S UTC")


def duration(run: Run) -> str:
    if run.end_time is None:
        return ""
    seconds = (run.end_time - run.start_time) / 1000
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def status(run: Run) -> str:
    return f"[{_STATUS_STYLE.get(run.status.value, 'white')}]{run.status.value}[/]"


def experiments_table(experiments: Sequence[Experiment]) -> Table:
    table = Table("id", "project", "name", "created", "by", "description")
    for e in experiments:
        table.add_row(str(e.id), e.project, e.name, when(e.created_at), e.created_by, e.description)
    return table


def runs_table(runs: Sequence[Run], columns: Sequence[str] = ()) -> Table:
    """One row per run; `columns` adds values such as `metrics.auc` or `params.model`."""
    table = Table("name", "status", "started (UTC)", "duration", *columns)
    table.add_column("run id", no_wrap=True, min_width=32)  # whole: it is what other commands take
    for run in runs:
        record = run.to_record()
        extra = [fmt(record.get(column)) for column in columns]
        table.add_row(
            run.name, status(run), when(run.start_time, compact=True), duration(run), *extra, run.id
        )
    return table


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 30) -> str:
    """The shape of a metric's history in `width` characters (NaN shown as a space)."""
    if len(values) > width:  # the last value of each of `width` even stretches
        values = [values[(i + 1) * len(values) // width - 1] for i in range(width)]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(
        SPARKS[int((v - low) / span * (len(SPARKS) - 1))] if math.isfinite(v) else " " for v in values
    )


def run_panel(console: Console, run: Run, experiment: str, histories: dict[str, list[Metric]]) -> None:
    """A run's attributes, params, tags, and each metric's history: last, min, max, steps."""
    console.print(f"[bold]{run.name}[/bold]  {run.id}  {status(run)}")
    rows = {
        "experiment": f"{experiment} ({run.experiment_id})",
        "started": when(run.start_time),
        "ended": when(run.end_time),
        "duration": duration(run),
        "created by": run.created_by,
        "parent run": run.parent_id or "",
        "entry point": run.source.entry_point or "",
        "git commit": (run.source.git_commit or "") + (" (dirty)" if run.source.git_dirty else ""),
        "python": str(run.environment.get("python", "")),
    }
    for label, value in rows.items():
        if value:
            console.print(f"  {label:<12} {value}")
    sections: dict[str, dict[str, object]] = {"params": {**run.params}, "tags": {**run.tags}}
    if histories:
        metrics = Table(
            "key", "last", "min", "max", "steps", "history", title="metrics", title_justify="left"
        )
        for key, history in sorted(histories.items()):
            series = [m.value for m in history]
            finite = [v for v in series if math.isfinite(v)] or [math.nan]
            last = run.metrics.get(key, series[-1] if series else math.nan)
            metrics.add_row(
                key, fmt(last), fmt(min(finite)), fmt(max(finite)), str(len(series)), sparkline(series)
            )
        console.print(metrics)
    for title, values in sections.items():
        if values:
            table = Table("key", "value", title=title, title_justify="left")
            for key, item in sorted(values.items()):
                table.add_row(key, fmt(item))
            console.print(table)
    if run.error:
        console.print("[red]error:[/red]")
        console.print(run.error, highlight=False, markup=False)


def compare_table(runs: Sequence[Run]) -> Table:
    """Params and metrics side by side; rows where the runs differ are highlighted."""
    table = Table("", *(f"{r.name}\n{r.id[:8]}" for r in runs))
    records = [r.to_record() for r in runs]
    keys = sorted({k for record in records for k in record if k.startswith(("params.", "metrics."))})
    for key in ["status", *keys]:
        values = [fmt(record.get(key)) for record in records]
        style = "bold yellow" if len(set(values)) > 1 else None
        table.add_row(key, *values, style=style)
    return table
