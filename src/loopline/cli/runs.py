"""`loopline runs ...`"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import compare_table, run_panel, runs_table
from loopline.core.search import parse_filter, parse_order_by

app = typer.Typer(help="Search, inspect, compare and delete runs.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    experiment: list[str] | None = typer.Option(
        None, "--experiment", "-e", help="Experiment name or id (repeatable); default: all."
    ),
    project: str = typer.Option("default", help="Project of the experiments."),
    filter_: str | None = typer.Option(
        None, "--filter", "-f", help="e.g. \"metrics.auc > 0.9 and params.model = 'rf'\""
    ),
    order_by: list[str] | None = typer.Option(None, "--order-by", "-o", help="e.g. 'metrics.auc DESC'."),
    max_results: int = typer.Option(50, "--max-results", "-n", help="Runs per page."),
    page_token: str | None = typer.Option(None, help="Continue from a previous page."),
    deleted: bool = typer.Option(False, "--deleted", help="Include deleted runs."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List runs matching a filter, in order."""
    refs = [int(e) if e.isdigit() else e for e in experiment] if experiment else None
    page = cli_context(ctx).services.tracking.search_runs(
        refs,
        project=project,
        filter=filter_,
        order_by=order_by,
        max_results=max_results,
        page_token=page_token,
        include_deleted=deleted,
    )
    if json_:  # the package list of every run belongs to `runs show`, not to a listing
        runs = [dataclasses.replace(r, environment=_brief(r.environment)) for r in page.runs]
        print_json({"runs": runs, "next_page_token": page.next_page_token})
        return
    columns = _mentioned_columns(filter_, order_by)
    console = Console()
    console.print(runs_table(page.runs, columns))
    if page.next_page_token:
        console.print(f"more runs: --page-token {page.next_page_token}", soft_wrap=True)


def _mentioned_columns(filter_: str | None, order_by: list[str] | None) -> list[str]:
    """Show the values a user filtered or sorted on."""
    fields = [str(key.field) for key in parse_order_by(order_by)]
    pending = [parse_filter(filter_)]
    while pending:
        expr = pending.pop()
        if expr is None:
            continue
        if hasattr(expr, "items"):
            pending.extend(expr.items)
        else:
            fields.append(str(expr.field))
    return [f for f in dict.fromkeys(fields) if f.startswith(("metrics.", "params.", "tags."))]


@app.command()
def show(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="Run id."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one run: attributes, params, metrics, tags, inputs, artifacts."""
    context = cli_context(ctx)
    service = context.services.tracking
    run = service.get_run(run_id)
    artifacts = service.list_artifacts(run_id)
    datasets = context.services.datasets
    inputs = [
        {"name": label, "digest": digest, "versions": [v.uri for v in datasets.versions_with_digest(digest)]}
        for label, digest in service.inputs(run_id)
    ]
    if json_:
        print_json({"run": run, "inputs": inputs, "artifacts": artifacts})
        return
    console = Console()
    experiment = service.get_experiment(run.experiment_id)
    histories = {key: service.metric_history(run_id, key) for key in run.metrics}
    run_panel(console, run, experiment.name, histories)
    if inputs:
        console.print("inputs:")
        for item in inputs:
            where = ", ".join(item["versions"]) or "not a registered dataset"
            console.print(f"  {item['name']}  sha256:{item['digest'][:12]}  ({where})")
    if artifacts:
        console.print("artifacts:")
        for entry in artifacts:
            console.print(f"  {entry.name}  ({entry.size} bytes, sha256:{entry.digest[:12]})")


@app.command()
def compare(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Params and metrics of several runs side by side, differences highlighted."""
    service = cli_context(ctx).services.tracking
    runs = [service.get_run(run_id) for run_id in run_ids]
    if json_:
        print_json([r.to_record() for r in runs])
    else:
        Console().print(compare_table(runs))


@app.command()
def delete(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(..., help="Run ids."),
) -> None:
    """Delete runs: hidden from lists and searches, data kept."""
    service = cli_context(ctx).services.tracking
    for run_id in run_ids:
        service.get_run(run_id)  # all exist before any is deleted
    for run_id in run_ids:
        service.delete_run(run_id)
    Console().print(f"deleted {len(run_ids)} run(s)")


def _brief(environment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in environment.items() if k != "packages"}


artifacts = typer.Typer(help="A run's artifacts: list or download them.", no_args_is_help=True)
app.add_typer(artifacts, name="artifacts")


@artifacts.command("list")
def artifacts_list(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="Run id."),
    prefix: str = typer.Option("", help="Only names under this folder, e.g. models/."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The run's artifacts: name, size and sha256."""
    found = cli_context(ctx).services.tracking.list_artifacts(run_id, prefix)
    if json_:
        print_json(found)
        return
    table = Table("name", "size", "sha256")
    for entry in found:
        table.add_row(entry.name, f"{entry.size:,}", entry.digest[:12])
    Console().print(table)


@artifacts.command("download")
def artifacts_download(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="Run id."),
    output: Path = typer.Option(Path("."), "--output", "-o", help="Folder to write them into."),
    prefix: str = typer.Option("", help="Only names under this folder, e.g. models/."),
) -> None:
    """Download the run's artifacts (each checked against its sha256) into a folder."""
    written = cli_context(ctx).services.tracking.download_artifacts(run_id, output, prefix)
    Console().print(f"{len(written)} artifact(s) of run {run_id} written under {output}")
