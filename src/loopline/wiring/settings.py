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
    audit_keys: SecretStr | None = None
    """Secrets that seal audit entries, `ID:SECRET[,ID:SECRET...]`, the one sealing new
    entries first (each secret at least 32 characters). Held by the server and its workers,
    not by the database; keep old keys listed to verify what they sealed."""
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
