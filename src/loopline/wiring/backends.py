"""Storage backends from settings: the one place that maps URI schemes to implementations.
Everything else receives its store and blob store through its constructor."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from loopline.artifacts import BlobStore
from loopline.artifacts.encryption import Keyring
from loopline.core.audit import AuditKeys
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput
from loopline.core.personal_data import check_hash_key
from loopline.store import MetadataStore, open_metadata_store
from loopline.wiring.settings import Settings

if TYPE_CHECKING:
    from loopline.artifacts.tables import TableArea
    from loopline.automation.loops import RunPipeline
    from loopline.wiring.local import LocalServices


@dataclass
class Backends:
    """An open metadata store and blob store, and the services over them."""

    store: MetadataStore
    blobs: BlobStore
    audit_keys: AuditKeys = field(default_factory=AuditKeys)
    online_store: str | None = None  # the feature store's online values (see Settings.online_store)
    # The folders feature views may read files from: a server's data roots; None, anywhere.
    file_roots: tuple[Path, ...] | None = None
    pii_hash_key: bytes | None = field(default=None, repr=False)  # see Settings.pii_hash_key

    def services(self, principal: Principal, run_pipeline: RunPipeline | None = None) -> LocalServices:
        """Every service over this store, acting as `principal`; a retraining loop runs its
        pipelines with `run_pipeline`."""
        from loopline.wiring.local import LocalServices

        return LocalServices(self, principal, run_pipeline)

    @property
    def tables(self) -> TableArea:
        """Parquet tables (prediction logs, feedback) beside the blobs, under the same keys."""
        from loopline.artifacts.tables import TableArea

        blobs = self.blobs
        return TableArea(f"{blobs.url.rstrip('/')}/tables", blobs.storage_options, blobs.keyring)

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()


def local_owner() -> Principal:
    """Who acts in embedded mode: the operating-system user, owner of everything."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "local"
    return Principal(name=name, is_owner=True)


def open_blob_store(settings: Settings) -> BlobStore:
    """The artifact store the settings name: a local folder or s3://bucket/prefix."""
    uri = settings.resolved_artifacts_uri
    scheme = urlparse(uri).scheme
    options: dict[str, Any] = {}
    if scheme == "s3":
        try:
            import s3fs  # noqa: F401
        except ImportError:
            raise InvalidInput(
                f"artifact store {uri!r} needs S3 support: pip install 'loopline[s3]'"
            ) from None
        if settings.s3_endpoint_url:
            options["client_kwargs"] = {"endpoint_url": settings.s3_endpoint_url}
    elif scheme not in ("", "file"):
        raise InvalidInput(f"artifact store {uri!r}: use a local folder or s3://bucket/prefix")
    keys = settings.encryption_keys
    return BlobStore(uri, options, Keyring.parse(None if keys is None else keys.get_secret_value()))


def open_backends(settings: Settings) -> Backends:
    """The store (migrated on open), the blob store and the audit keys the settings name."""
    blobs = open_blob_store(settings)
    keys = AuditKeys.parse(None if settings.audit_keys is None else settings.audit_keys.get_secret_value())
    online = settings.online_store or f"sqlite:///{settings.home_path / 'online-features.db'}"
    secret = settings.pii_hash_key
    hash_key = check_hash_key(None if secret is None else secret.get_secret_value())
    store = open_metadata_store(settings.resolved_store_uri)
    return Backends(store, blobs, keys, online, pii_hash_key=hash_key)


def bootstrap_admin(backends: Backends, name: str = "admin") -> str | None:
    """On a store with no users yet: create administrator `name` and return a token for it
    (the only time it is shown). None when users exist already."""
    if backends.store.access.users():
        return None
    access = backends.services(Principal("loopline", is_owner=True)).access
    access.create_user(name, admin=True)
    _, secret = access.create_token(name, "bootstrap")
    return secret
