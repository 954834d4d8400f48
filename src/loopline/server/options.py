"""What a team server is configured with, passed in process to each worker."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from loopline.core.entities import Principal
from loopline.server.oidc import OidcConfig


@dataclass(frozen=True)
class ServerOptions:
    max_json_bytes: int = 16 * 1024 * 1024
    max_upload_bytes: int = 2 * 1024**3
    staging_dir: Path | None = None  # uploads in progress; default: a folder beside the artifacts
    max_failed_logins: int = 20  # per client address and minute; then 429 until the minute has passed
    # `loopline ui`: every request acts as this principal, without a login; only requests
    # addressed to a loopback host name are answered (a rebound DNS name is refused).
    embedded: Principal | None = None
    secure_cookies: bool = False  # behind TLS: the session cookie is sent over HTTPS only
    # The folders feature views may read files from; none: dataset versions and databases only.
    data_roots: tuple[Path, ...] = ()
    oidc: OidcConfig | None = None  # sign-in with an OpenID Connect provider, besides tokens


def default_staging(artifacts_url: str) -> Path:
    """Uploads land beside a local artifact store (one filesystem: moving them in is cheap),
    or in the temporary folder when the store is remote."""
    if "://" in artifacts_url and not artifacts_url.startswith("file://"):
        return Path(tempfile.gettempdir(), "loopline-staging")
    return Path(artifacts_url.removeprefix("file://")).parent / "staging"
