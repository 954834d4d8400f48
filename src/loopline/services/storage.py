"""The storage lifecycle's interface: the retention policy and garbage collection."""

from __future__ import annotations

from typing import Protocol

from loopline.core.lifecycle import GcReport, RetentionPolicy


class Storage(Protocol):
    """What `loopline gc` removes and when; changes and collections are for administrators."""

    def retention(self) -> RetentionPolicy:
        """The retention policy in force (the default one if none was set)."""

    def set_retention(
        self,
        *,
        deleted_runs_days: float | None,
        prediction_log_days: float | None,
        unreferenced_blob_hours: float,
        reason: str = "",
    ) -> RetentionPolicy:
        """Replace the policy: ages in days (None: keep forever) and the grace of unreferenced
        blobs in hours. Administrators only; on the audit trail."""

    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Remove what the policy no longer keeps; with `dry_run`, only report it. Administrators
        only; a collection that removed something is on the audit trail."""
