"""`loopline NOUN VERB`: the command line over the same services as the SDK."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import ClassVar

import typer
from rich.console import Console
from rich.markup import escape

from loopline.cli.context import CliContext
from loopline.cli.lazy import Lazy, LazyGroup
from loopline.core.errors import LooplineError


def _group(module: str, help: str, attribute: str = "app") -> Lazy:
    return Lazy(f"loopline.cli.{module}", attribute, help)


class Commands(LazyGroup):
    """Every command but `demo`, imported when it runs (a test keeps the helps true)."""

    lazy: ClassVar[dict[str, Lazy]] = {
        "experiments": _group("experiments", "Create and list experiments."),
        "runs": _group("runs", "Search, inspect, compare and delete runs."),
        "models": _group("models", "Registered models: versions, aliases, promotion, cards."),
        "deployments": _group(
            "deployments", "Deployments: named endpoints with traffic policies over model versions."
        ),
        "datasets": _group("datasets", "Datasets: versions by content, schemas, profiles, diffs."),
        # checks of any data; `datasets` holds the stored versions
        "data": _group(
            "checks", "Check data (files or dataset versions): infer a contract, validate, detect drift."
        ),
        "monitor": _group(
            "monitor", "Monitors: drift, performance, latency and errors of deployments; alerts."
        ),
        "pipelines": _group("pipelines", "Pipelines: steps with caching, retries and timeouts; their runs."),
        "schedules": _group(
            "automation", "Cron schedules (UTC) of pipelines, monitors, materializations and gc.", "schedules"
        ),
        "triggers": _group("automation", "Triggers: run a job when a monitor opens an alert.", "triggers"),
        "jobs": _group("automation", "Jobs that workers ran, run or will run.", "jobs"),
        "loop": _group("loop", "The closed loop: retrain, canary, promote or roll back."),
        "audit": _group("audit", "The tamper-evident audit trail of every change."),
        "users": _group("access", "Users of a shared loopline.", "users"),
        "tokens": _group("access", "API tokens: shown once, stored only as a hash.", "tokens"),
        "members": _group("access", "Roles per project: viewer, editor, maintainer, owner.", "members"),
        "features": _group("features", "The feature store: feature views, training sets, online values."),
        "db": _group("db", "Manage the metadata database."),
        "encryption": _group("encryption", "Encryption at rest of blobs and logs: key status and rotation."),
        "gc": _group(
            "gc",
            "Remove what the retention policy no longer keeps: deleted runs, old prediction logs, "
            "unreferenced blobs.",
        ),
        "erase": _group(
            "erase", "Erase one entity's personal data from prediction logs and dataset versions.", "erase"
        ),
        "import": _group("imports", "Bring history kept by other systems into loopline."),
        "lineage": _group(
            "lineage", "Where a model version, run or dataset came from and what was made from it.", "lineage"
        ),
        "serve": _group("serve", "Serve model predictions over HTTP.", "serve"),
        "server": _group(
            "server",
            "Serve the web UI (/) and the REST API (/api/v1) for many users with tokens.",
            "server",
        ),
        "ui": _group("server", "Open the web UI over the local store: loopback only, no sign-in.", "ui"),
        "predict": _group(
            "serve", "Score a file with a model version, in chunks, with a progress bar.", "predict"
        ),
        "worker": _group(
            "automation",
            "Run due schedules, monitors and triggered pipelines until stopped (Ctrl-C, SIGTERM).",
            "worker",
        ),
    }


app = typer.Typer(
    name="loopline",
    help="loopline: track, version, deploy and monitor models in one closed loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=Commands,
)


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
    from loopline.wiring.settings import Settings  # pydantic: not for `--help`

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


PIPED_WIDTH = 1000  # rich reads COLUMNS when it sizes a console
HELP_WIDTH = 100  # Typer sizes its help to TERMINAL_WIDTH first: help stays readable in a pipe


def run(argv: list[str] | None = None) -> int:
    """Run one command; domain errors become one line on stderr and a non-zero exit code."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    # Written to a pipe or a file, tables are as wide as their cells, never cut to 80 columns
    # (or to a COLUMNS a shell exported for its terminal).
    piped, saved = not sys.stdout.isatty(), {k: os.environ.get(k) for k in ("COLUMNS", "TERMINAL_WIDTH")}
    if piped:
        os.environ["COLUMNS"] = str(PIPED_WIDTH)
        os.environ.setdefault("TERMINAL_WIDTH", str(HELP_WIDTH))
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
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return 0


def main() -> None:
    sys.exit(run())
