"""The retention policy and garbage collection: what is removed, when, and on whose word.

`gc` applies the policy in three steps: purge runs deleted long enough ago (one transaction
with its audit entry), remove prediction-log partitions past their age, then remove the
blobs nothing refers to any more (see `loopline.lifecycle.gc` for why that is safe while
others write). Administrators only: it removes data for good.
"""

from __future__ import annotations

import time

from loopline.artifacts.blobs import BlobStore
from loopline.artifacts.tables import TableArea
from loopline.core.clock import now_ms
from loopline.core.entities import Principal
from loopline.core.errors import PermissionDenied
from loopline.core.lifecycle import GcReport, KeptRun, RetentionPolicy, check_age
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.lifecycle.gc import CLOCK_SKEW_S, old_partitions, remove_partition, sweep_blobs
from loopline.predictions.log import DAY_MS
from loopline.store import MetadataStore, atomic

TARGET = "storage"  # what the audit entries of the lifecycle are about


class StorageService:
    """The retention policy and gc over one store, acting as `authorizer.principal`."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        tables: TableArea,
        *,
        authorizer: Authorizer,
        audit: AuditTrail,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._tables = tables
        self.principal: Principal = authorizer.principal
        self._audit = audit

    def _require_admin(self, what: str) -> None:
        if not self.principal.is_owner:
            raise PermissionDenied(f"only an administrator may {what}; {self.principal.name} is not one")

    def retention(self) -> RetentionPolicy:
        """The policy in force: the one set, else keep deleted runs and prediction logs
        forever and remove unreferenced blobs after the default grace."""
        return self._store.retention.policy() or RetentionPolicy()

    @atomic
    def set_retention(
        self,
        *,
        deleted_runs_days: float | None,
        prediction_log_days: float | None,
        unreferenced_blob_hours: float,
        reason: str = "",
    ) -> RetentionPolicy:
        """Replace the policy (administrators only), on the audit trail with the one before."""
        self._require_admin("change the retention policy")
        grace = check_age("unreferenced_blob_hours", unreferenced_blob_hours, "hours", optional=False)
        assert grace is not None
        policy = RetentionPolicy(
            check_age("deleted_runs_days", deleted_runs_days, "days"),
            check_age("prediction_log_days", prediction_log_days, "days"),
            grace, now_ms(), self.principal.name,
        )  # fmt: skip
        before = self.retention()
        self._store.retention.set_policy(policy)
        self._audit.record(
            "storage.retention", TARGET, before=_ages(before), after=_ages(policy), reason=reason
        )
        return policy

    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Remove what the policy no longer keeps, or with `dry_run` only say what that is.
        Administrators only; a collection that removed something is on the audit trail."""
        self._require_admin("collect garbage" if not dry_run else "see what gc would remove")
        policy = self.retention()
        started = now_ms()
        report = GcReport(dry_run, policy, started, started)
        purge = self._runs(report, started)
        if policy.prediction_log_days is not None:
            older_than = started - int(policy.prediction_log_days * DAY_MS)
            for folder, partition in old_partitions(self._tables, older_than):
                if not dry_run:
                    remove_partition(self._tables, folder)
                report.partitions.append(partition)
        cutoff = started / 1000 - policy.unreferenced_blob_hours * 3600
        registering = self._store.retention.oldest_registration_in_progress()
        if registering is not None and registering / 1000 - CLOCK_SKEW_S < cutoff:
            cutoff = registering / 1000 - CLOCK_SKEW_S
            report.kept.append(
                f"blobs stored since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(cutoff))} UTC: "
                "a model version registered then is still PENDING (its files may be among them)"
            )
        ignoring = purge if dry_run else []

        def referenced(digests: list[str]) -> set[str]:
            return self._store.retention.referenced_among(digests, ignoring)

        report.blobs.extend(sweep_blobs(self._blobs, referenced, cutoff, dry_run=dry_run))
        if not dry_run:
            report.stale_temporaries = self._blobs.remove_stale_temporaries()
        report.ended_at = now_ms()
        if not dry_run and report.removed_anything:
            self._store.atomically(
                lambda: self._audit.record("storage.gc", TARGET, after=report.counts(), policy=_ages(policy))
            )
        return report

    def _runs(self, report: GcReport, now: int) -> list[str]:
        """Purge the runs deleted long enough ago (unless a dry run), noting them and those
        kept in `report`; returns the ids of those purged."""
        days = report.policy.deleted_runs_days
        if days is None:
            return []
        found = self._store.retention.deleted_runs(now - int(days * DAY_MS))
        purge = [run_id for run_id, why in found if why is None]
        report.kept_runs.extend(KeptRun(run_id, why) for run_id, why in found if why is not None)
        report.purged_runs.extend(purge)
        if not purge:
            return purge
        if report.dry_run:
            report.artifact_rows = self._store.retention.count_artifacts(purge)
            return purge

        @atomic
        def purge_runs(self: StorageService) -> int:
            removed = self._store.retention.purge_runs(purge)
            self._audit.record("storage.purge_runs", TARGET, before={"runs": purge}, artifact_rows=removed)
            return removed

        report.artifact_rows = purge_runs(self)
        return purge


def _ages(policy: RetentionPolicy) -> dict[str, float | None]:
    return {
        "deleted_runs_days": policy.deleted_runs_days,
        "prediction_log_days": policy.prediction_log_days,
        "unreferenced_blob_hours": policy.unreferenced_blob_hours,
    }
