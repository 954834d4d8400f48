"""`loopline loop ...`: a deployment's retraining loop and the timeline of its decisions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from loopline._pipelines import worker_services
from loopline.cli.context import cli_context, print_json
from loopline.cli.render import when
from loopline.core.automation import JobKind
from loopline.core.errors import InvalidInput
from loopline.specs.loop import LoopPolicy

app = typer.Typer(help="The closed loop: retrain, canary, promote or roll back.", no_args_is_help=True)
STYLE = {
    "promoted": "green", "rolled_back": "red", "refused": "yellow", "failed": "red", "suppressed": "dim",
    "guarded": "yellow", "escalated": "magenta", "held": "magenta", "quarantined": "yellow",
}  # fmt: skip


@app.command()
def declare(ctx: typer.Context, policy: Path = typer.Argument(..., help="Retraining policy (YAML).")) -> None:
    """Declare (or replace) the retraining policy of a deployment. On a local store, where
    `loop start` runs it, its pipeline's module must be importable from here."""
    context = cli_context(ctx)
    declared = LoopPolicy.load(policy)
    if not context.settings.uri:
        _check_importable(declared.pipeline)
    loop = context.services.loops.declare(declared)
    Console().print(
        f"deployment {loop.deployment} retrains by {loop.policy['pipeline']} ({loop.state.value})"
    )


@app.command()
def start(
    ctx: typer.Context,
    deployment: str = typer.Argument(...),
    reason: str = typer.Option("started by hand", help="Recorded on the timeline."),
    force: bool = typer.Option(False, "--force", help="Start even while cooling down (audited)."),
) -> None:
    """Retrain now, gate the challenger and start its canary: in this process on a local store;
    through a server, as a job that the next free worker runs. Exits 1 if nothing started."""
    context = cli_context(ctx)
    if context.settings.uri:
        params = {"force": True} if force else {}
        job = context.services.automation.enqueue(JobKind.RETRAIN, deployment, params)
        Console().print(f"job {job.id} queued: a worker retrains {deployment} (`loopline loop status`)")
        return
    loops = worker_services(context.settings, context.backends)[0].loops
    event = loops.start(deployment, reason, force=force)
    Console(soft_wrap=True).print(f"{event.kind}: {event.message}")
    if event.kind in ("failed", "refused", "suppressed"):
        raise typer.Exit(1)


@app.command()
def advance(ctx: typer.Context, deployment: str = typer.Argument(...)) -> None:
    """Decide the canary if it has seen enough (a worker does this on every tick)."""
    context = cli_context(ctx)
    event = worker_services(context.settings, context.backends)[0].loops.advance(deployment)
    Console(soft_wrap=True).print(
        "nothing to decide yet" if event is None else f"{event.kind}: {event.message}"
    )


@app.command()
def guard(ctx: typer.Context, deployment: str = typer.Argument(...)) -> None:
    """Check the champion against the policy's guard now, and act (a worker does this on
    every tick): roll back to the previous champion if it does better, or ask a person."""
    context = cli_context(ctx)
    event = worker_services(context.settings, context.backends)[0].loops.guard(deployment)
    Console(soft_wrap=True).print(
        "no action: the champion is within its bounds, a challenger is out, or it was acted on lately"
        if event is None
        else f"{event.kind}: {event.message}"
    )


@app.command()
def reset(
    ctx: typer.Context,
    deployment: str = typer.Argument(...),
    reason: str = typer.Option("reset by hand", help="Recorded on the timeline."),
) -> None:
    """Abandon a retraining or canary stuck mid-step (its worker died): the champion serves."""
    context = cli_context(ctx)
    event = context.services.loops.reset(deployment, reason)
    Console(soft_wrap=True).print(f"{event.kind}: {event.message}")


@app.command()
def status(
    ctx: typer.Context, deployment: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")
) -> None:
    """The loop's state and the timeline of its decisions, with their reasons."""
    context = cli_context(ctx)
    service = context.services.loops
    loop, events = service.get(deployment), service.events(deployment)
    if as_json:
        print_json({"loop": loop, "events": events})
        return
    console = Console(soft_wrap=True)
    line = f"deployment {deployment}: {loop.state.value}"
    if loop.challenger is not None:
        line += f", challenger version {loop.challenger} against champion version {loop.champion}"
    if loop.cooldown_until:
        line += f"; cool-down until {when(loop.cooldown_until)}"
    console.print(line)
    table = Table("when", "event", "what happened", "by")
    for event in events:
        style = STYLE.get(event.kind, "")
        table.add_row(
            when(event.at), f"[{style}]{event.kind}[/]" if style else event.kind, event.message, event.actor
        )
    console.print(table)


def _check_importable(target: str) -> None:
    """The pipeline's module can be found (not imported: that would run it)."""
    module = target.partition(":")[0]
    if module.endswith(".py"):
        found = Path(module).is_file()
    else:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package that is not there
            found = False
    if not found:
        raise InvalidInput(f"pipeline {target!r}: module {module!r} cannot be imported from here")
