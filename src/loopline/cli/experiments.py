"""`loopline experiments ...`"""

from __future__ import annotations

import typer
from rich.console import Console

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import experiments_table

app = typer.Typer(help="Create and list experiments.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    project: str | None = typer.Option(None, help="Only this project's experiments."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List experiments."""
    found = cli_context(ctx).services.tracking.list_experiments(project)
    if json_:
        print_json(found)
    else:
        Console().print(experiments_table(found))


@app.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Experiment name, unique within its project."),
    project: str = typer.Option("default", help="Project to create it in."),
    description: str = typer.Option("", help="What the experiment is about."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create an experiment."""
    experiment = cli_context(ctx).services.tracking.create_experiment(name, project, description)
    if json_:
        print_json(experiment)
    else:
        Console().print(
            f"created experiment {experiment.name!r} (id {experiment.id}) in {experiment.project!r}"
        )
