"""`loopline NOUN VERB`: the command line over the same services as the SDK."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from loopline.cli import (
    access,
    audit,
    automation,
    checks,
    datasets,
    db,
    deployments,
    experiments,
    lineage,
    loop,
    models,
    monitor,
    pipelines,
    runs,
    serve,
    server,
)
from loopline.cli.context import CliContext
from loopline.core.errors import LooplineError
from loopline.wiring.settings import Settings

app = typer.Typer(
    name="loopline",
    help="loopline: track, version, deploy and monitor models in one closed loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(deployments.app, name="deployments")
app.add_typer(datasets.app, name="datasets")
app.add_typer(checks.app, name="data")  # checks of any data; `datasets`: the stored versions
app.add_typer(monitor.app, name="monitor")
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(automation.schedules, name="schedules")
app.add_typer(automation.triggers, name="triggers")
app.add_typer(automation.jobs, name="jobs")
app.add_typer(loop.app, name="loop")
app.add_typer(audit.app, name="audit")
app.add_typer(access.users, name="users")
app.add_typer(access.tokens, name="tokens")
app.add_typer(access.members, name="members")
app.add_typer(db.app, name="db")
app.command("lineage")(lineage.lineage)
app.command("serve")(serve.serve)
app.command("server")(server.server)
app.command("predict")(serve.predict)
app.command("worker")(automation.worker)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, help="Store folder \\[env: LOOPLINE_HOME; default ~/.loopline]."),
    store_uri: str | None = typer.Option(None, help="Metadata database URL \\[env: LOOPLINE_STORE_URI]."),
    artifacts_uri: str | None = typer.Option(None, help="Artifact store \\[env: LOOPLINE_ARTIFACTS_URI]."),
    uri: str | None = typer.Option(
        None, help="A loopline server to work through \\[env: LOOPLINE_URI; token: LOOPLINE_TOKEN]."
    ),
) -> None:
    settings = Settings()
    overrides = {"home": home, "store_uri": store_uri, "artifacts_uri": artifacts_uri, "uri": uri}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    ctx.obj = CliContext(settings)
    ctx.call_on_close(ctx.obj.close)


@app.command()
def demo(ctx: typer.Context) -> None:
    """Train and track a scikit-learn model on a bundled dataset."""
    from loopline.cli.context import cli_context
    from loopline.demo import run_demo

    run_demo(cli_context(ctx).settings, Console(soft_wrap=True))


def run(argv: list[str] | None = None) -> int:
    """Run one command; domain errors become one line on stderr and a non-zero exit code."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        app(args=argv, prog_name="loopline")  # usage errors and --help exit through SystemExit
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except LooplineError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("LOOPLINE_DEBUG"):
            raise
        message = escape(f"{type(exc).__name__}: {exc}")
        errors.print(f"[red]internal error:[/red] {message} (LOOPLINE_DEBUG=1 shows a traceback)")
        return 70
    return 0


def main() -> None:
    sys.exit(run())
