"""Encryption at rest, for administrators: which keys seal the artifact store's files, and
rotation, which moves every file (blobs and Parquet tables) under the current key.

It runs where the store is, with the keys (`loopline encryption ...`): the files are read and
rewritten there. Each rewrap is recorded on the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from loopline.artifacts.blobs import BlobStore
from loopline.artifacts.encryption import NEW_KEY_COMMAND, SETTING
from loopline.artifacts.rotation import Rewrap
from loopline.artifacts.tables import TableArea
from loopline.core.errors import InvalidInput, PermissionDenied
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.store import MetadataStore


@dataclass(frozen=True)
class EncryptionStatus:
    """How the artifact store's files are sealed: files per key id (`plaintext`: none)."""

    current_key: str | None  # the key new files are sealed under; None: encryption is off
    keys: list[str]  # every key id configured, the current one first
    blobs: dict[str, int]
    tables: dict[str, int]


@dataclass(frozen=True)
class RewrapReport:
    """What a rewrap did (or, with `dry_run`, would do) to the blobs and to the tables."""

    key: str  # the key every file is now under
    dry_run: bool
    blobs: Rewrap
    tables: Rewrap

    @property
    def total(self) -> Rewrap:
        found = Rewrap()
        found.add(self.blobs)
        found.add(self.tables)
        return found


class EncryptionService:
    """Key census and rotation over `blobs` and `tables`, as the authorizer's principal."""

    def __init__(
        self, store: MetadataStore, blobs: BlobStore, tables: TableArea, *, authorizer: Authorizer,
        audit: AuditTrail,
    ) -> None:  # fmt: skip
        self._store = store
        self._blobs = blobs
        self._tables = tables
        self.principal = authorizer.principal
        self._audit = audit

    def _require_admin(self, what: str) -> None:
        if not self.principal.is_owner:
            raise PermissionDenied(f"only an administrator may {what}")

    def status(self) -> EncryptionStatus:
        """The key ids configured and how many files each one seals."""
        self._require_admin("see how the artifact store is encrypted")
        keyring = self._blobs.keyring
        return EncryptionStatus(
            current_key=None if keyring is None else keyring.current,
            keys=[] if keyring is None else list(keyring.ids),
            blobs=dict(sorted(self._blobs.rotation_files().census().items())),
            tables=dict(sorted(self._tables.rotation_files().census().items())),
        )

    def rewrap(self, *, dry_run: bool = False) -> RewrapReport:
        """Put every blob and table file under the current (first) key: a file under an older
        key gets its data key wrapped anew (its content is copied as it is), a plaintext file
        is encrypted. Files under a key that is not configured are reported, not changed."""
        self._require_admin("rewrap the artifact store's encryption keys")
        keyring = self._blobs.keyring
        if keyring is None:
            raise InvalidInput(
                f"{SETTING} is not set, so there is no key to encrypt under: set it to ID:KEY (make a key "
                f"with {NEW_KEY_COMMAND}), newest key first"
            )
        report = RewrapReport(
            keyring.current,
            dry_run,
            self._blobs.rotation_files().rewrap(keyring, dry_run=dry_run),
            self._tables.rotation_files().rewrap(keyring, dry_run=dry_run),
        )
        total = report.total
        if not dry_run and (total.rewrapped or total.encrypted or total.problems):
            self._store.atomically(lambda: self._record(report))
        return report

    def _record(self, report: RewrapReport) -> None:
        """The audit entry of a rewrap: the files are changed already (they are no part of
        the database's transaction), so it records what was done."""
        total = report.total
        self._audit.record(
            "encryption.rewrap", f"artifacts:{self._blobs.url}", after={"key": report.key},
            rewrapped=total.rewrapped, encrypted=total.encrypted, current=total.current,
            problems=len(total.problems),
        )  # fmt: skip
