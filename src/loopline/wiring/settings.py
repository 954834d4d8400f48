"""Settings: one typed object, read from LOOPLINE_* variables and passed explicitly."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_", extra="ignore")

    home: Path = Path("~/.loopline")
    """Where the embedded store keeps its database and artifacts."""
    store_uri: str | None = None
    """Metadata database; default: SQLite at `<home>/loopline.db`."""
    artifacts_uri: str | None = None
    """Artifact store: a local folder or s3://bucket/prefix; default: `<home>/artifacts`."""
    s3_endpoint_url: str | None = None
    """An S3-compatible server instead of AWS (MinIO, Ceph...)."""
    experiment: str = "Default"
    """The experiment of runs started without naming one."""
    online_store: str | None = None
    """The feature store's online values: sqlite:///PATH or redis://HOST:PORT; default: SQLite
    at `<home>/online-features.db`."""
    uri: str | None = None
    """A loopline server (http://host:port): the SDK and CLI then work through it."""
    token: str | None = None
    """The API token to send to that server."""
    server_max_json_mb: int = 16
    """`loopline server`: the largest JSON body it accepts, in MiB (larger: 413)."""
    server_max_upload_mb: int = 2048
    """`loopline server`: the largest artifact or model file it accepts, in MiB."""
    server_data_roots: str | None = None
    """`loopline server`: comma-separated folders whose files feature views may read; unset,
    none (views then read dataset versions and databases)."""
    server_max_failed_logins: int = 20
    """`loopline server`: failed tokens one address may send per minute; then it gets 429."""
    server_public_url: str | None = None
    """`loopline server`: the address users reach it at (https://loopline.example.com), from
    which the OpenID Connect redirect URI is made; unset, http://HOST:PORT it listens on."""
    oidc_issuer: str | None = None
    """`loopline server`: an OpenID Connect provider to sign in with (its issuer URL, whose
    /.well-known/openid-configuration is read); unset, sign-in takes tokens only."""
    oidc_client_id: str | None = None
    """The client id this server is registered under at the provider."""
    oidc_client_secret: SecretStr | None = None
    """That client's secret; unset for a public client (PKCE only)."""
    oidc_scopes: str = "openid email profile"
    """The scopes asked for; add the one your provider sends groups under (`groups`, often)."""
    oidc_groups_claim: str = "groups"
    """The ID token claim that lists the user's groups."""
    oidc_username_claim: str = "preferred_username"
    """The claim a new user's name comes from (then preferred_username, email, sub)."""
    oidc_group_roles: str | None = None
    """Groups to roles: `GROUP=admin` or `GROUP=PROJECT:ROLE`, comma-separated, e.g.
    `ml-admins=admin,data-science=default:editor`. The groups decide the roles on the
    projects named here (at each sign-in) and, if a group is mapped to admin, who is one."""
    oidc_allow_unmapped: bool = False
    """Also sign in (and create) users none of whose groups is mapped; they start without roles."""
    oidc_display_name: str | None = None
    """The provider's name on the sign-in button; default: the issuer's host."""
    audit_keys: SecretStr | None = None
    """Secrets that seal audit entries, `ID:SECRET[,ID:SECRET...]`, the one sealing new
    entries first (each secret at least 32 characters). Held by the server and its workers,
    not by the database; keep old keys listed to verify what they sealed."""
    encryption_keys: SecretStr | None = None
    """Keys that encrypt blobs and Parquet logs at rest, `ID:KEY[,ID:KEY...]`, each KEY 32
    random bytes in base64 or hex; the first encrypts new files, all decrypt. Rotation: put a
    new key first, run `loopline encryption rewrap`, then drop the old keys. Unset: files
    are stored as they are."""
    tls_ca: Path | None = None
    """A CA bundle (PEM) the client trusts for an https:// LOOPLINE_URI whose certificate a
    private CA signed; unset: the system's trusted CAs."""
    tls_key_password: SecretStr | None = None
    """`loopline server` and `loopline serve` with `--tls-key`: the password of that key, if
    it has one."""
    pii_hash_key: SecretStr | None = None
    """The secret (at least 32 characters) under which personal data is hashed (HMAC-SHA256):
    columns a data contract hashes at registration, and inputs a deployment's prediction-log
    policy hashes. Unset, hashing is refused; keep it where the server and `serve` run."""
    worker_pipelines: str | None = None
    """`loopline worker`: comma-separated modules it imports pipelines from (with their
    submodules); unset, none; `*`, any. Importing a pipeline runs its module's code."""

    @property
    def allowed_pipeline_modules(self) -> list[str] | None:
        """The modules a worker may import pipelines from; None for any (`*`)."""
        if self.worker_pipelines is not None and self.worker_pipelines.strip() == "*":
            return None
        return [m.strip() for m in (self.worker_pipelines or "").split(",") if m.strip()]

    @property
    def server_data_root_paths(self) -> tuple[Path, ...]:
        """The folders of `server_data_roots`, resolved."""
        folders = (f.strip() for f in (self.server_data_roots or "").split(","))
        return tuple(Path(f).expanduser().resolve() for f in folders if f)

    @property
    def home_path(self) -> Path:
        return self.home.expanduser()

    @property
    def resolved_store_uri(self) -> str:
        return self.store_uri or f"sqlite:///{self.home_path / 'loopline.db'}"

    @property
    def resolved_artifacts_uri(self) -> str:
        return self.artifacts_uri or str(self.home_path / "artifacts")
