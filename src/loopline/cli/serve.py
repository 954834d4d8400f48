"""`loopline serve` and `loopline predict`."""

from __future__ import annotations

from pathlib import Path

import typer

from loopline.cli.context import cli_context
from loopline.core.errors import InvalidInput
from loopline.wiring.backends import local_owner


def serve(
    ctx: typer.Context,
    model: str | None = typer.Argument(None, help="A model URI to serve, e.g. models:/churn@champion."),
    deployment: list[str] | None = typer.Option(
        None, "--deployment", "-d", help="Serve this existing deployment (repeatable)."
    ),
    name: str | None = typer.Option(None, help="Deployment name for MODEL (default: the model's name)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes."),
    batching: bool = typer.Option(True, help="Micro-batch concurrent requests into one model call."),
    max_batch_rows: int = typer.Option(64, help="Largest micro-batch, in rows."),
    max_batch_wait_ms: float = typer.Option(2.0, help="Longest a micro-batch keeps collecting, in ms."),
    max_body_mb: float = typer.Option(4.0, help="Largest request body, in MiB (larger: 413)."),
    timeout: float = typer.Option(30.0, help="Seconds a prediction may take (longer: 504)."),
    trust: bool = typer.Option(False, help="Allow serving pickled (python_function) models."),
    extra_fields: str | None = typer.Option(
        None, help="For MODEL's deployment: refuse (422) or ignore request fields the model does not take."
    ),
    tls_cert: Path | None = typer.Option(
        None, help="Serve HTTPS with this certificate (PEM; with --tls-key)."
    ),
    tls_key: Path | None = typer.Option(
        None, help="The certificate's private key (PEM) \\[its password: env LOOPLINE_TLS_KEY_PASSWORD]."
    ),
) -> None:
    """Serve model predictions over HTTP."""
    from loopline.serving.app import HttpOptions, ServingApp
    from loopline.serving.processes import serve as run_server
    from loopline.serving.runtime import ServingOptions
    from loopline.serving.server import ServerConfig, build_app
    from loopline.serving.tls import tls_files
    from loopline.wiring.backends import open_backends

    context = cli_context(ctx)
    password = context.settings.tls_key_password
    tls = tls_files(tls_cert, tls_key, None if password is None else password.get_secret_value())
    names = list(deployment or [])
    if model is not None:
        names.append(context.local.deployments.for_model(model, name, extra_fields).name)
    if not names:
        raise InvalidInput("give a model URI to serve, or --deployment NAME")
    for existing in names:
        context.services.deployments.get(existing)  # fails now, not in a worker
    if workers < 1:
        raise InvalidInput("--workers must be at least 1")
    config = ServerConfig(
        deployments=tuple(dict.fromkeys(names)),
        host=host,
        port=port,
        workers=workers,
        serving=ServingOptions(
            batching=batching,
            max_batch_rows=max_batch_rows,
            max_batch_wait=max_batch_wait_ms / 1000,
            trust=trust,
        ),
        http=HttpOptions(max_body_bytes=int(max_body_mb * 1024 * 1024), timeout=timeout),
        tls=tls,
    )
    context.close()  # the workers open their own connections
    settings = context.settings

    def make_app(metrics_dir: Path | None) -> ServingApp:
        backends = open_backends(settings)
        return build_app(
            backends.services(local_owner()), backends.tables, config, metrics_dir,
            hash_key=backends.pii_hash_key,
        )  # fmt: skip

    scheme = "http" if tls is None else "https"
    typer.echo(
        f"serving {', '.join(config.deployments)} at {scheme}://{host}:{port} (Ctrl-C stops it)", err=True
    )
    run_server(make_app, config)


def predict(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model URI, e.g. models:/churn@champion."),
    input_: Path = typer.Option(..., "--input", help="Rows to score: .parquet or .csv."),
    output: Path = typer.Option(..., "--output", help="Where to write the scored rows (.parquet or .csv)."),
    chunk_rows: int = typer.Option(50_000, help="Rows per chunk: memory stays bounded by it."),
    ray: str | None = typer.Option(
        None, "--ray", help="Score the chunks on a Ray cluster at this address ('local' starts one)."
    ),
    trust: bool = typer.Option(False, help="Allow pickled (python_function) models."),
) -> None:
    """Score a file with a model version, in chunks, with a progress bar."""
    from loopline.serving.batch import score_file

    registry = cli_context(ctx).services.registry
    summary = score_file(registry, model, input_, output, chunk_rows=chunk_rows, ray_address=ray, trust=trust)
    typer.echo(f"scored {summary.rows:,} rows with {summary.model} in {summary.seconds:.1f}s -> {output}")
