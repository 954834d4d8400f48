"""`loopline server`: the team server over the same store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from loopline.cli.context import cli_context
from loopline.core.errors import InvalidInput

if TYPE_CHECKING:
    from loopline.serving.tls import TlsFiles


def server(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5050, help="Port to listen on."),
    store_uri: str | None = typer.Option(None, help="Metadata database URL (overrides the global option)."),
    artifacts_uri: str | None = typer.Option(None, help="Artifact store (overrides the global option)."),
    workers: int = typer.Option(1, help="Worker processes."),
    max_json_mb: int | None = typer.Option(
        None, help="Largest JSON request body, in MiB (larger: 413) [env: LOOPLINE_SERVER_MAX_JSON_MB; 16]."
    ),
    max_upload_mb: int | None = typer.Option(
        None, help="Largest uploaded file, in MiB (larger: 413) [env: LOOPLINE_SERVER_MAX_UPLOAD_MB; 2048]."
    ),
    tls_cert: Path | None = typer.Option(
        None, help="Serve HTTPS with this certificate (PEM; with --tls-key)."
    ),
    tls_key: Path | None = typer.Option(
        None, help="The certificate's private key (PEM) \\[its password: env LOOPLINE_TLS_KEY_PASSWORD]."
    ),
    check: bool = typer.Option(
        False, "--check", help="Check the settings and the store, say what would be served, and exit."
    ),
) -> None:
    """Serve the web UI (/) and the REST API (/api/v1) for many users with tokens."""
    from loopline.server.oidc import oidc_config
    from loopline.server.options import ServerOptions
    from loopline.serving.processes import serve
    from loopline.serving.tls import tls_files
    from loopline.ui.app import create_server_app
    from loopline.wiring.backends import bootstrap_admin, open_backends

    if workers < 1:
        raise InvalidInput("--workers must be at least 1")
    context = cli_context(ctx)
    overrides = {"store_uri": store_uri, "artifacts_uri": artifacts_uri}
    settings = context.settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    password = settings.tls_key_password
    tls = tls_files(tls_cert, tls_key, None if password is None else password.get_secret_value())
    url = f"{'http' if tls is None else 'https'}://{host}:{port}"
    oidc = oidc_config(settings, settings.server_public_url or url)  # checked first
    backends = open_backends(settings)  # migrates the store once, before any worker starts
    secret = None if check else bootstrap_admin(backends)
    backends.close()
    console = Console(stderr=True, highlight=False)
    if secret is not None:
        console.print(
            "created the administrator [bold]admin[/bold]; its token, shown this once:\n"
            f"  {secret}\nexport LOOPLINE_TOKEN=<it> (and LOOPLINE_URI={url}) to use it"
        )
    if oidc is not None:
        console.print(
            f"sign-in with {oidc.display_name} ({oidc.issuer}): its client {oidc.client_id!r} must allow "
            f"the redirect URI {oidc.redirect_uri}"
        )
    if check:
        console.print(f"the settings are sound; would serve {url} (--check: not serving)")
        return
    options = ServerOptions(
        max_json_bytes=(max_json_mb or settings.server_max_json_mb) * 1024 * 1024,
        max_upload_bytes=(max_upload_mb or settings.server_max_upload_mb) * 1024 * 1024,
        max_failed_logins=settings.server_max_failed_logins,
        data_roots=settings.server_data_root_paths,
        oidc=oidc,
        # behind TLS here, or behind a proxy that ends TLS for the public https:// address
        secure_cookies=tls is not None or (settings.server_public_url or "").startswith("https://"),
    )
    console.print(f"the loopline server is at {url}/ (Ctrl-C stops it)")
    serve(lambda _: create_server_app(open_backends(settings), options), Listen(host, port, workers, tls=tls))


def ui(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Loopback address to listen on."),
    port: int = typer.Option(5050, help="Port to listen on."),
) -> None:
    """Open the web UI over the local store: loopback only, no sign-in."""
    from loopline.server.options import ServerOptions
    from loopline.serving.processes import serve
    from loopline.ui.app import create_server_app
    from loopline.wiring.backends import local_owner, open_backends

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise InvalidInput(
            f"loopline ui acts as the store's owner without sign-in, so it listens on loopback only, "
            f"not {host}; for a team, run loopline server"
        )
    settings = cli_context(ctx).settings
    options = ServerOptions(embedded=local_owner())
    backends = open_backends(settings)
    Console(stderr=True, highlight=False).print(
        f"the loopline UI is at http://{host}:{port}/ (Ctrl-C stops it)"
    )
    serve(lambda _: create_server_app(backends, options), Listen(host, port, 1))


@dataclass(frozen=True)
class Listen:
    """Where the team server listens, and with how many worker processes."""

    host: str
    port: int
    workers: int
    access_log: bool = False
    tls: TlsFiles | None = None  # HTTPS with these files; None: plain HTTP
