"""`loopline pipelines ...`: run pipelines, list their runs, show each step of one."""

from __future__ import annotations

from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import when
from loopline.core.errors import InvalidInput
from loopline.core.pipelines import PipelineRun, StepStatus
from loopline.pipelines.definition import Pipeline, load_pipeline

app = typer.Typer(
    help="Pipelines: steps with caching, retries and timeouts; their runs.", no_args_is_help=True
)
JSON = typer.Option(False, "--json", help="Print JSON.")
STATUS_STYLE = {
    "FINISHED": "green",
    "CACHED": "cyan",
    "FAILED": "red",
    "SKIPPED": "yellow",
    "RUNNING": "blue",
}


def _declared_type(pipeline: Pipeline, name: str) -> type | None:
    """str, int, float or bool, from the parameter's annotation or else its default."""
    parameter = pipeline.signature.parameters.get(name)
    if parameter is None:
        return None
    annotation = parameter.annotation
    named = {"str": str, "int": int, "float": float, "bool": bool}
    if isinstance(annotation, str):
        return named.get(annotation)
    if annotation in named.values():
        return annotation  # type: ignore[no-any-return]
    default = parameter.default
    return type(default) if type(default) in named.values() else None


def parse_params(pipeline: Pipeline, pairs: list[str]) -> dict[str, Any]:
    """NAME=VALUE pairs, typed by the pipeline's signature: text stays as written, numbers and
    booleans must parse as such; other parameters take a YAML scalar."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"-p takes NAME=VALUE, got {pair!r}")
        declared = _declared_type(pipeline, name)
        if declared is str:
            params[name] = text
            continue
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        if declared is bool and not isinstance(value, bool):
            raise InvalidInput(f"parameter {name} takes true or false, got {text!r}")
        if declared is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInput(f"parameter {name} takes a whole number, got {text!r}")
        if declared is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"parameter {name} takes a number, got {text!r}")
            value = float(value)
        params[name] = value
    return params


@app.command("run")
def run_pipeline(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="MODULE:PIPELINE or FILE.py:PIPELINE."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE, repeatable."),
    executor: str = typer.Option("local", help="local, process or ray."),
    workers: int | None = typer.Option(None, help="Steps at once (process and ray executors)."),
    ray_address: str | None = typer.Option(None, help="Ray cluster address; 'local' starts one here."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute every step."),
    resume: str | None = typer.Option(None, help="Reuse the finished steps of this failed run."),
    experiment: str | None = typer.Option(None, help="Experiment (default: the pipeline's name)."),
    as_json: bool = JSON,
) -> None:
    """Run a pipeline; exits 1 if a step fails."""
    from loopline import _sdk
    from loopline._pipelines import runner
    from loopline.pipelines.runner import PipelineFailed

    pipeline = load_pipeline(target)
    params = parse_params(pipeline, param)
    _sdk.configure(settings=cli_context(ctx).settings)
    try:
        result = runner().run(
            pipeline,
            params,
            executor=executor,
            workers=workers,
            cache=not no_cache,
            resume=resume,
            ray_address=ray_address,
            experiment=experiment,
        )
        outcome: PipelineRun = result.run
    except PipelineFailed as failed:
        outcome = failed.run
    if as_json:
        print_json(outcome)
    else:
        _show(Console(soft_wrap=True), outcome)
    if outcome.status != "FINISHED":
        raise typer.Exit(1)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    pipeline: str | None = typer.Option(None, help="Only this pipeline's runs."),
    limit: int = typer.Option(50, help="How many, newest first."),
    as_json: bool = JSON,
) -> None:
    """Pipeline runs, newest first."""
    runs = cli_context(ctx).services.automation.pipeline_runs(pipeline, limit)
    if as_json:
        print_json(runs)
        return
    table = Table("run", "pipeline", "status", "executor", "started", "seconds", "resumed from")
    for run in runs:
        seconds = "" if run.ended_at is None else f"{(run.ended_at - run.started_at) / 1000:.1f}"
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(
            run.id, run.pipeline, f"[{style}]{run.status}[/]", run.executor, when(run.started_at), seconds,
            run.resumed_from or "",
        )  # fmt: skip
    Console(soft_wrap=True).print(table)


@app.command()
def show(
    ctx: typer.Context, run_id: str = typer.Argument(..., help="Pipeline run id."), as_json: bool = JSON
) -> None:
    """Each step of a pipeline run: status, attempts, time, output, error."""
    run = cli_context(ctx).services.automation.pipeline_run(run_id)
    if as_json:
        print_json(run)
    else:
        _show(Console(soft_wrap=True), run)


def _show(console: Console, run: PipelineRun) -> None:
    table = Table(
        "step", "status", "attempts", "seconds", "run", "output", "error",
        title=f"pipeline {run.pipeline}, run {run.id}: {run.status}",
    )  # fmt: skip
    for step in run.steps:
        seconds = "" if step.ended_at is None or step.status is StepStatus.CACHED else (
            f"{(step.ended_at - step.started_at) / 1000:.2f}"
        )  # fmt: skip
        output = "" if step.output is None else step.output.kind
        if step.output is not None and step.output.kind == "model":
            output = f"models:/{step.output.value['name']}/{step.output.value['version']}"
        style = STATUS_STYLE.get(step.status.value, "")
        table.add_row(
            step.name, f"[{style}]{step.status.value}[/]", str(step.attempts or ""), seconds,
            (step.run_id or "")[:8], output, (step.error or "")[:200],
        )  # fmt: skip
    console.print(table)
    if run.status == "FAILED":
        console.print(f"resume from the failed step: loopline pipelines run ... --resume {run.id}")
