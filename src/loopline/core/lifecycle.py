"""Entities of the storage lifecycle: the retention policy and what a garbage collection did.

A policy says how old a thing must be before `loopline gc` removes it: runs deleted more
than `deleted_runs_days` ago, prediction-log partitions older than `prediction_log_days`,
and blobs nothing refers to whose file is older than `unreferenced_blob_hours`. None keeps
that kind of thing forever. With no policy set, deleted runs and prediction logs are kept
forever and unreferenced blobs go after `DEFAULT_BLOB_GRACE_HOURS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loopline.core.errors import InvalidInput

DEFAULT_BLOB_GRACE_HOURS = 24.0
"""How old an unreferenced blob must be before gc removes it, when no policy says otherwise:
longer than any write takes between storing a blob and committing what refers to it."""

MAX_DAYS = 36_500.0  # a hundred years: past that, say "keep forever" (no value)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What gc keeps: ages after which deleted runs, prediction-log partitions and unreferenced
    blobs are removed (None: kept forever). `updated_*` is None for the default policy."""

    deleted_runs_days: float | None = None
    prediction_log_days: float | None = None
    unreferenced_blob_hours: float = DEFAULT_BLOB_GRACE_HOURS
    updated_at: int | None = None
    updated_by: str | None = None


def check_age(name: str, value: float | None, unit: str, *, optional: bool = True) -> float | None:
    """`value` if it is a positive, finite age (None allowed when `optional`); else InvalidInput
    naming the setting and what to give instead."""
    if value is None:
        if optional:
            return None
        raise InvalidInput(f"{name} needs a value: a positive number of {unit}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a number of {unit}, not {type(value).__name__}")
    limit = MAX_DAYS if unit == "days" else MAX_DAYS * 24
    if not math.isfinite(value) or not 0 < value <= limit:
        keep = " (or no value, to keep them forever)" if optional else ""
        raise InvalidInput(
            f"{name} must be a positive number of {unit}, at most {limit:,.0f}{keep}; got {value}"
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class KeptRun:
    """A deleted run old enough to purge, kept, and why."""

    run_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class LogPartition:
    """One day of one table of a deployment's prediction log (`predictions`, `feedback`,
    `errors`), with its files and their bytes."""

    table: str
    deployment: str
    date: str  # YYYY-MM-DD, UTC
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class RemovedBlob:
    """A blob nothing referred to, old enough to remove."""

    digest: str
    size: int


@dataclass(slots=True)
class GcReport:
    """What a garbage collection removed, or with `dry_run` would remove, and what it kept
    that a reader might expect gone (with why)."""

    dry_run: bool
    policy: RetentionPolicy
    started_at: int
    ended_at: int
    purged_runs: list[str] = field(default_factory=list)
    artifact_rows: int = 0  # the purged runs' artifact index entries
    kept_runs: list[KeptRun] = field(default_factory=list)
    partitions: list[LogPartition] = field(default_factory=list)
    blobs: list[RemovedBlob] = field(default_factory=list)
    stale_temporaries: int = 0  # partial writes of processes that died
    kept: list[str] = field(default_factory=list)  # why other candidates stayed

    @property
    def blob_bytes(self) -> int:
        """The bytes the removed blobs held."""
        return sum(b.size for b in self.blobs)

    @property
    def partition_bytes(self) -> int:
        """The bytes the removed prediction-log partitions held."""
        return sum(p.bytes for p in self.partitions)

    @property
    def removed_anything(self) -> bool:
        """Whether anything was (or, in a dry run, would be) removed."""
        return bool(self.purged_runs or self.partitions or self.blobs or self.stale_temporaries)

    def counts(self) -> dict[str, int]:
        """How many of each kind, and the bytes freed: what the audit entry records."""
        return {
            "runs": len(self.purged_runs),
            "artifact_rows": self.artifact_rows,
            "partitions": len(self.partitions),
            "partition_bytes": self.partition_bytes,
            "blobs": len(self.blobs),
            "blob_bytes": self.blob_bytes,
            "stale_temporaries": self.stale_temporaries,
        }
