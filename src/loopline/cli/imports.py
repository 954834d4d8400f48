"""`loopline import mlflow SOURCE`"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from loopline.cli.context import cli_context, print_json

app = typer.Typer(help="Bring history kept by other systems into loopline.", no_args_is_help=True)


@app.command()
def mlflow(
    ctx: typer.Context,
    source: str = typer.Argument(
        ...,
        help="An MLflow tracking URI: sqlite:///mlflow.db, an mlruns folder, postgresql://..., http://...",
    ),
    project: str = typer.Option("default", help="Project the experiments and models land in."),
    json_: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import MLflow's experiments, runs (params, tags, metric histories, artifacts) and
    registered models (versions, aliases, tags). Re-running imports nothing twice and finishes
    what an interrupted import left. Exits 1 if anything could not be brought over."""
    from loopline.imports.mlflow import MlflowImport

    services = cli_context(ctx).services
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, transient=True, disable=json_ or not sys.stderr.isatty()) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        report = MlflowImport(
            source, services.tracking, services.registry, project=project, progress=advance
        ).run()
    if json_:
        print_json({"source": report.source, "imported": report.imported, "skipped": report.skipped})
    else:
        table = Table("what", "in MLflow", "in loopline", title=f"imported from {source}")
        for what, count in report.source.items():
            shown = report.imported.get(what, 0)
            table.add_row(what, f"{count:,}", f"{shown:,}" if shown == count else f"[red]{shown:,}[/red]")
        console = Console()
        console.print(table)
        for reason in report.skipped:
            console.print(f"[yellow]not imported:[/yellow] {escape(reason)}", highlight=False)
    if not report.complete:
        raise typer.Exit(1)
