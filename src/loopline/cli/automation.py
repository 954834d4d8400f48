"""`loopline schedules|triggers|jobs ...` and `loopline worker`: the lifecycle on its own."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from loopline._pipelines import worker_services
from loopline.automation.service import GC_TARGET
from loopline.automation.worker import Worker, WorkerOptions
from loopline.cli.context import cli_context, print_json
from loopline.cli.pipelines import parse_params
from loopline.cli.render import when
from loopline.core.automation import JobKind
from loopline.pipelines.definition import load_pipeline
from loopline.services import Automation

schedules = typer.Typer(
    help="Cron schedules (UTC) of pipelines, monitors, materializations and gc.", no_args_is_help=True
)
triggers = typer.Typer(help="Triggers: run a job when a monitor opens an alert.", no_args_is_help=True)
jobs = typer.Typer(help="Jobs that workers ran, run or will run.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print JSON.")
PARAMS = typer.Option(
    [], "--param", "-p",
    help="NAME=VALUE, repeatable: a pipeline's parameter, or a materialization's end=ISO-TIME, on=ray, "
    "ray_address=ADDRESS.",
)  # fmt: skip
MATERIALIZE = typer.Option(None, help="Materialize this feature view (NAME or NAME@VERSION).")


def _service(ctx: typer.Context) -> Automation:
    return cli_context(ctx).services.automation


OPTIONS = {JobKind.PIPELINE: "--pipeline MODULE:PIPELINE", JobKind.MONITOR: "--monitor NAME",
           JobKind.RETRAIN: "--retrain DEPLOYMENT", JobKind.MATERIALIZE: "--materialize VIEW",
           JobKind.GC: "--gc"}  # fmt: skip
GC = typer.Option(False, "--gc", help="Collect garbage as the retention policy says (`loopline gc`).")


def _what(choices: dict[JobKind, str | None], params: list[str]) -> tuple[JobKind, str, dict[str, Any]]:
    """The one job a command was given among its options (`choices`), with its parameters."""
    given = [(kind, target) for kind, target in choices.items() if target is not None]
    if len(given) != 1:
        raise typer.BadParameter(f"give exactly one of {' or '.join(OPTIONS[k] for k in choices)}")
    kind, target = given[0]
    if kind is JobKind.PIPELINE:
        return kind, target, parse_params(load_pipeline(target), params)
    if kind is JobKind.MATERIALIZE:  # as text: the automation service checks them
        found: dict[str, Any] = {}
        for item in params:
            name, equals, value = item.partition("=")
            if not equals:
                raise typer.BadParameter(f"{item!r} is not NAME=VALUE")
            found[name] = value
        return kind, target, found
    if params:
        raise typer.BadParameter("-p parameters are for pipelines and materializations")
    return kind, target, {}


@schedules.command("create")
def create_schedule(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Schedule name."),
    cron: str = typer.Option(..., help="Five cron fields in UTC, e.g. '0 3 * * *'."),
    pipeline: str | None = typer.Option(None, help="Run this pipeline (MODULE:PIPELINE)."),
    monitor: str | None = typer.Option(None, help="Run this monitor."),
    materialize: str | None = MATERIALIZE,
    gc: bool = GC,
    param: list[str] = PARAMS,
) -> None:
    """Run a pipeline or a monitor, materialize a feature view, or collect garbage, on a cron
    schedule (a worker runs it)."""
    choices = {
        JobKind.PIPELINE: pipeline, JobKind.MONITOR: monitor, JobKind.MATERIALIZE: materialize,
        JobKind.GC: GC_TARGET if gc else None,
    }  # fmt: skip
    kind, target, params = _what(choices, param)
    schedule = _service(ctx).create_schedule(name, cron, kind, target, params)
    Console().print(f"schedule {schedule.name}: {kind.value} {target}, next due {when(schedule.next_at)}")


@schedules.command("list")
def list_schedules(ctx: typer.Context, as_json: bool = JSON) -> None:
    found = _service(ctx).schedules()
    if as_json:
        print_json(found)
        return
    table = Table("name", "cron (UTC)", "runs", "next due", "last due")
    for s in found:
        table.add_row(s.name, s.cron, f"{s.kind.value} {s.target}", when(s.next_at), when(s.last_at))
    Console().print(table)


@schedules.command("delete")
def delete_schedule(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    _service(ctx).delete_schedule(name)


@triggers.command("create")
def create_trigger(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Trigger name."),
    monitor: str = typer.Option(..., help="Watch the alerts of this monitor."),
    rule: str | None = typer.Option(None, help="Only alerts of this rule (default: any)."),
    pipeline: str | None = typer.Option(None, help="Run this pipeline (MODULE:PIPELINE)."),
    retrain: str | None = typer.Option(None, help="Start the retraining loop of this deployment."),
    materialize: str | None = MATERIALIZE,
    param: list[str] = PARAMS,
    cooldown: int = typer.Option(3600, help="Seconds after firing during which alerts are only recorded."),
) -> None:
    """Run a pipeline, a deployment's retraining loop or a feature view's materialization
    when a monitor opens an alert."""
    choices = {JobKind.PIPELINE: pipeline, JobKind.RETRAIN: retrain, JobKind.MATERIALIZE: materialize}
    kind, target, params = _what(choices, param)
    trigger = _service(ctx).create_trigger(
        name, monitor, kind, target, params, rule=rule, cooldown_s=cooldown
    )
    Console().print(f"trigger {trigger.name}: alerts of {monitor} run {target} (cool-down {cooldown}s)")


@triggers.command("list")
def list_triggers(ctx: typer.Context, as_json: bool = JSON) -> None:
    found = _service(ctx).triggers()
    if as_json:
        print_json(found)
        return
    table = Table("name", "monitor", "rule", "runs", "cool-down s", "last fired")
    for t in found:
        table.add_row(t.name, t.monitor, t.rule or "any", t.target, str(t.cooldown_s), when(t.last_fired_at))
    Console().print(table)


@triggers.command("delete")
def delete_trigger(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    _service(ctx).delete_trigger(name)


@jobs.command("list")
def list_jobs(ctx: typer.Context, limit: int = typer.Option(50), as_json: bool = JSON) -> None:
    """Newest first: why each job exists, who ran it, how it ended."""
    found = _service(ctx).jobs(limit)
    if as_json:
        print_json(found)
        return
    table = Table("id", "status", "runs", "why", "attempts", "created", "ended", "worker", "error")
    for j in found:
        table.add_row(
            str(j.id), j.status.value, f"{j.kind.value} {j.target}", j.reason, str(j.attempts),
            when(j.created_at), when(j.ended_at), j.lease_owner or "", (j.error or "")[:120],
        )  # fmt: skip
    Console(soft_wrap=True).print(table)


@jobs.command("enqueue")
def enqueue(
    ctx: typer.Context,
    pipeline: str | None = typer.Option(None, help="Run this pipeline (MODULE:PIPELINE)."),
    monitor: str | None = typer.Option(None, help="Run this monitor."),
    retrain: str | None = typer.Option(None, help="Start the retraining loop of this deployment."),
    materialize: str | None = MATERIALIZE,
    gc: bool = GC,
    param: list[str] = PARAMS,
) -> None:
    """Queue a job for the next free worker."""
    choices = {
        JobKind.PIPELINE: pipeline, JobKind.MONITOR: monitor, JobKind.RETRAIN: retrain,
        JobKind.MATERIALIZE: materialize, JobKind.GC: GC_TARGET if gc else None,
    }  # fmt: skip
    kind, target, params = _what(choices, param)
    Console().print(f"job {_service(ctx).enqueue(kind, target, params).id} queued")


def worker(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Enqueue what is due, run one job if any, and exit."),
    lease: float = typer.Option(60.0, min=1.0, help="Seconds a job stays this worker's without a heartbeat."),
    poll: float = typer.Option(5.0, min=0.05, help="Seconds between looks for work when idle."),
    allow_pipelines: str | None = typer.Option(
        None,
        help="Comma-separated modules to import pipelines from, with their submodules ('*': any); "
        "others fail unimported \\[env: LOOPLINE_WORKER_PIPELINES; default: none].",
    ),
) -> None:
    """Run due schedules, monitors and triggered pipelines until stopped (Ctrl-C, SIGTERM)."""
    context = cli_context(ctx)
    if allow_pipelines is not None:
        context.settings = context.settings.model_copy(update={"worker_pipelines": allow_pipelines})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    allowed = context.settings.allowed_pipeline_modules
    if allowed is None:
        logging.getLogger(__name__).warning(
            "this worker imports pipelines from any module a maintainer names (--allow-pipelines '*')"
        )
    elif not allowed:
        logging.getLogger(__name__).info(
            "this worker runs no pipeline: allow their modules with --allow-pipelines"
        )
    backends = context.backends
    services, run_job = worker_services(context.settings, backends)
    # on every tick: decide canaries; end runs, fail registrations and remove partial blobs
    # whose process died
    periodic: list[Callable[[], object]] = [
        services.loops.advance_all,
        services.tracking.end_silent_runs,
        services.registry.fail_abandoned_versions,
        backends.blobs.remove_stale_temporaries,
    ]
    runner = Worker(backends.store, run_job, WorkerOptions(lease, poll), periodic=periodic)
    if once:
        job = runner.tick()
        Console().print(
            "no job was due" if job is None else f"job {job.id}: {job.status.value} {job.error or ''}"
        )
        return
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        runner.stop()
