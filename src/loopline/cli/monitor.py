"""`loopline monitor ...`: drift, performance, latency and errors of a deployment, per window."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import fmt, when
from loopline.core.errors import InvalidInput
from loopline.core.monitoring import Alert, MonitorOutcome
from loopline.monitoring.notify import redact
from loopline.services import Monitors
from loopline.specs.monitor import MonitorSpec

app = typer.Typer(
    help="Monitors: drift, performance, latency and errors of deployments; alerts.", no_args_is_help=True
)
JSON = typer.Option(False, "--json", help="Print JSON.")
SUMMARY = (
    "rows",
    "drift.share",
    "drift.prediction",
    "drift.label",
    "perf.accuracy",
    "est.accuracy",
    "perf.rmse",
)


def _service(ctx: typer.Context) -> Monitors:
    return cli_context(ctx).services.monitors


@app.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name."),
    deployment: str = typer.Option(..., help="The deployment to watch."),
    reference: str = typer.Option(
        ..., help="Reference dataset: NAME or NAME@VERSION (e.g. the training data)."
    ),
    target: str | None = typer.Option(None, help="The reference's label column (label drift, estimation)."),
    spec: Path | None = typer.Option(
        None, help="YAML: window, columns, drift tests, alert rules, notifiers."
    ),
    window_rows: int | None = typer.Option(None, help="Window: the last N predictions (default 5000)."),
    window_hours: float | None = typer.Option(None, help="Window: the last H hours."),
    replace: bool = typer.Option(
        False, help="Replace the monitor's definition if it exists (runs are kept)."
    ),
    trust: bool = typer.Option(False, help="Trust a pickled model to load it (python_function flavor)."),
) -> None:
    """Create a monitor; its reference profiles and calibration are computed now, once."""
    definition = MonitorSpec.load(spec) if spec is not None else MonitorSpec()
    if window_rows is not None or window_hours is not None:
        definition = definition.model_copy(update={"window": {"rows": window_rows, "hours": window_hours}})
        definition = MonitorSpec.parse(definition.model_dump(mode="json"))
    monitor = _service(ctx).create(
        name, deployment, reference, target=target, spec=definition, replace=replace, trust=trust
    )
    Console().print(f"monitor {monitor.name} watches {monitor.deployment} against {reference}")


@app.command("list")
def list_(ctx: typer.Context, json_: bool = JSON) -> None:
    """Every monitor, with its newest run."""
    service = _service(ctx)
    monitors = service.list_all()
    newest = {m.name: next(iter(service.runs(m.name, 1)), None) for m in monitors}
    firing = {m.name: len(service.alerts(m.name, "firing")) for m in monitors}
    if json_:
        print_json([{"monitor": m, "last_run": newest[m.name], "firing": firing[m.name]} for m in monitors])
        return
    table = Table("name", "deployment", "window", "last run (UTC)", "rows", "drift share", "firing alerts")
    for m in monitors:
        run = newest[m.name]
        window = m.spec["window"]
        size = f"{window['rows']:,} rows" if window.get("rows") else f"{window['hours']:g} h"
        table.add_row(
            m.name,
            m.deployment,
            size,
            when(run.at) if run else "never",
            f"{run.rows:,}" if run else "",
            fmt(run.values.get("drift.share")) if run else "",
            str(firing[m.name]) or "",
        )
    Console().print(table)


@app.command()
def run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name."),
    json_: bool = JSON,
) -> None:
    """Evaluate the current window now: drift, performance, latency, errors; alerts."""
    outcome = _service(ctx).run(name)
    if json_:
        print_json(
            {
                "run": outcome.run,
                "opened": outcome.opened,
                "resolved": outcome.resolved,
                "firing": outcome.still_firing,
            }
        )
        return
    _render_run(Console(), outcome)


def _render_run(console: Console, outcome: MonitorOutcome) -> None:
    run = outcome.run
    span = f"from {when(run.window_start)} to {when(run.window_end)}"
    console.print(f"run {run.id} of {run.monitor}: {run.rows:,} predictions {span}")
    for warning in run.details.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")
    table = Table("value", "this window")
    for key, value in sorted(run.values.items()):
        if not key.startswith("drift.") or key in SUMMARY or key in ("drift.columns", "drift.dataset"):
            table.add_row(key, fmt(value))
    console.print(table)
    drifted = run.details.get("drifted_columns", [])
    console.print(f"drifted columns: {', '.join(drifted) if drifted else 'none'}")
    for alert in outcome.opened:
        console.print(f"[red]ALERT[/] [{alert.severity}] {alert.message}")
    for alert in outcome.still_firing:
        console.print(f"[red]still firing[/] [{alert.severity}] {alert.message} ({alert.occurrences} runs)")
    for alert in outcome.resolved:
        console.print(f"[green]resolved[/] {alert.rule}")


@app.command()
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name."),
    runs: int = typer.Option(10, help="How many recent runs to list."),
    json_: bool = JSON,
) -> None:
    """A monitor's definition (webhook secrets hidden) and its recent runs."""
    service = _service(ctx)
    monitor = service.get(name)
    spec = MonitorSpec.parse(monitor.spec)
    for notifier in spec.notify:
        if notifier.url:
            notifier.url = redact(notifier.url)
    recent = service.runs(name, runs)
    if json_:
        print_json({"monitor": {**vars_of(monitor), "spec": spec.model_dump(mode="json")}, "runs": recent})
        return
    console = Console()
    console.print(f"[bold]{monitor.name}[/] watches {monitor.deployment}; created {when(monitor.created_at)}")
    console.print(spec.model_dump(mode="json", exclude_defaults=True) or "default settings")
    table = Table("run", "at (UTC)", "rows", *SUMMARY[1:])
    for r in recent:
        table.add_row(str(r.id), when(r.at), f"{r.rows:,}", *(fmt(r.values.get(k)) for k in SUMMARY[1:]))
    console.print(table)


@app.command()
def forecast(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name."),
    value: str = typer.Argument(..., help="A monitored value: est.accuracy, drift.share..."),
    below: float | None = typer.Option(None, help="When it falls under this."),
    above: float | None = typer.Option(None, help="When it rises over this."),
    runs: int = typer.Option(24, min=6, help="How many recent runs the trend reads."),
    json_: bool = JSON,
) -> None:
    """Where a monitored value is heading: its robust trend, and when it crosses a limit."""
    if below is not None and above is not None:
        raise InvalidInput("give --below or --above, not both")
    limit = below if below is not None else above
    found = _service(ctx).forecast(name, value, runs=runs, threshold=limit, below=above is None)
    if json_:
        print_json(found)
        return
    if found is None:
        Console().print(f"{value}: too few runs for a trend (it needs 6)")
        return
    Console().print(f"{value} now about {found.level:.4g}; {found.describe(limit)}")


def vars_of(monitor: object) -> dict[str, object]:
    return {k: getattr(monitor, k) for k in ("name", "deployment", "created_at", "created_by", "updated_at")}


@app.command()
def report(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name."),
    output: Path = typer.Option(..., "--output", "-o", help="Write the HTML report here."),
    run_id: int | None = typer.Option(None, "--run", help="Which run (default: the newest)."),
    png: Path | None = typer.Option(None, help="Also write a PNG summary here."),
    plotly: str = typer.Option(
        "shared",
        help="shared: one plotly.min.js beside the reports of a folder (offline, small files); "
        "inline: in each file; cdn: from Plotly's CDN (needs internet).",
    ),
) -> None:
    """Write a run's report: drift per column, distributions, performance over time."""
    if plotly not in ("shared", "inline", "cdn"):
        raise InvalidInput(f"--plotly {plotly!r}: use shared, inline or cdn")
    service = _service(ctx)
    page = service.report_html(name, run_id, inline_js=plotly == "inline")
    if plotly == "shared":
        page = _share_plotly(page, output.parent)
    output.write_text(page, encoding="utf-8")
    console = Console()
    console.print(f"wrote {output}")
    if png is not None:
        service.report_png(name, png, run_id)
        console.print(f"wrote {png}")


@app.command()
def alerts(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Monitor name (default: every monitor)."),
    firing: bool = typer.Option(False, help="Only alerts still firing."),
    json_: bool = JSON,
) -> None:
    """Alerts with their evidence: when they fired, how often, and whether they resolved."""
    found = _service(ctx).alerts(name, "firing" if firing else None)
    if json_:
        print_json(found)
        return
    Console().print(_alerts_table(found))


def _alerts_table(found: list[Alert]) -> Table:
    table = Table("id", "monitor", "rule", "severity", "status", "since (UTC)", "runs", "value", "notified")
    for a in found:
        sent = ", ".join(_notified(n) for n in a.notifications[-3:])
        table.add_row(
            str(a.id),
            a.monitor,
            a.rule,
            a.severity,
            a.status,
            when(a.first_at),
            str(a.occurrences),
            fmt(a.value),
            sent,
        )
    return table


def _notified(outcome: dict[str, Any]) -> str:
    """`webhook:ok`, or why it failed: `webhook:failed (the address is private...)`."""
    if outcome.get("ok"):
        return f"{outcome['type']}:ok"
    return f"{outcome['type']}:failed ({outcome.get('error') or 'no reason given'})"


def _share_plotly(page: str, folder: Path) -> str:
    """The page loading `plotly.min.js` from its own folder, written there once (again when
    Plotly's version changed), so that reports side by side share one copy and open offline."""
    from plotly.offline import get_plotlyjs

    script = get_plotlyjs()
    shared = folder / "plotly.min.js"
    if not shared.is_file() or shared.stat().st_size != len(script.encode()):
        folder.mkdir(parents=True, exist_ok=True)
        shared.write_text(script, encoding="utf-8")
    # the CDN's integrity hash and CORS mode are for the CDN's copy; a file beside the page needs neither
    cdn = r'src="https://cdn\.plot\.ly/[^"]+"(?: integrity="[^"]*")?(?: crossorigin="[^"]*")?'
    return re.sub(cdn, 'src="plotly.min.js"', page, count=1)
