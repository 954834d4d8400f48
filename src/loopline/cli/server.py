"""`loopline server`: the team server over the same store."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from loopline.cli.context import cli_context
from loopline.core.errors import InvalidInput


def server(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5050, help="Port to listen on."),
    store_uri: str | None = typer.Option(None, help="Metadata database URL (overrides the global option)."),
    artifacts_uri: str | None = typer.Option(None, help="Artifact store (overrides the global option)."),
    workers: int = typer.Option(1, help="Worker processes."),
    max_json_mb: int = typer.Option(16, help="Largest JSON request body, in MiB (larger: 413)."),
    max_upload_mb: int = typer.Option(2048, help="Largest uploaded file, in MiB (larger: 413)."),
) -> None:
    """Serve the REST API (/api/v1, OpenAPI at /openapi.json) for many users with tokens."""
    import uvicorn

    from loopline.backends import open_backends
    from loopline.governance.access import bootstrap_admin

    if workers < 1:
        raise InvalidInput("--workers must be at least 1")
    context = cli_context(ctx)
    overrides = {"store_uri": store_uri, "artifacts_uri": artifacts_uri}
    settings = context.settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    backends = open_backends(settings)  # migrates the store once, before any worker starts
    secret = bootstrap_admin(backends.store)
    backends.close()
    console = Console(stderr=True, highlight=False)
    if secret is not None:
        console.print(
            "created the administrator [bold]admin[/bold]; its token, shown this once:\n"
            f"  {secret}\nexport LOOPLINE_TOKEN=<it> (and LOOPLINE_URI=http://{host}:{port}) to use it"
        )
    os.environ.update(
        LOOPLINE_STORE_URI=settings.resolved_store_uri,
        LOOPLINE_ARTIFACTS_URI=settings.resolved_artifacts_uri,
        LOOPLINE_SERVER_MAX_JSON_MB=str(max_json_mb),
        LOOPLINE_SERVER_MAX_UPLOAD_MB=str(max_upload_mb),
    )
    uvicorn.run(
        "loopline.server.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )
