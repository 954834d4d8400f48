"""The two sweeps of garbage collection over files: old prediction-log partitions, and blobs
nothing refers to.

Why removing a blob is safe while others write
----------------------------------------------
A writer stores a blob first and commits what refers to it after (an artifact entry, a
model version's files, a dataset version): for a moment a needed blob is unreferenced. The
sweep never removes such a blob, by three rules together:

1. Grace: only a blob whose file is older than the policy's grace is a candidate. A blob
   just written is young.
2. Touch: storing bytes that are stored already restarts the blob's age (`BlobStore.put_*`),
   so a writer that deduplicates against an old unreferenced blob makes it young again.
3. Look again, then remove: right before removing a candidate the sweep asks the metadata
   again whether anything refers to it now, and `BlobStore.remove(modified_before=...)`
   checks its age again after setting it aside, putting it back if a writer touched it;
   a writer that comes after finds it gone and writes it anew.

A registration (a model version PENDING) stores many files before its commit, for up to
hours: no blob modified after the oldest registration in progress began is a candidate,
whatever the grace. Runs in progress need nothing more: each of their artifacts is
committed right after its blob is stored, so its blob is young or referenced.

A collection killed midway leaves a consistent store: the metadata changes in one
transaction, and each blob or partition is removed on its own, only once nothing refers
to it. A blob set aside when it was killed is put back by the next collection.
"""

from __future__ import annotations

import calendar
import contextlib
import time
from collections.abc import Callable, Iterator

from loopline.artifacts.blobs import BlobStore, StoredBlob
from loopline.artifacts.tables import TableArea
from loopline.core.lifecycle import LogPartition, RemovedBlob
from loopline.predictions.log import DAY_MS, ERRORS, FEEDBACK, PREDICTIONS

LOG_TABLES = (PREDICTIONS, FEEDBACK, ERRORS)
CLOCK_SKEW_S = 300.0  # file times and database times may come from different clocks
_BATCH = 500  # candidates checked against the metadata at once

Referenced = Callable[[list[str]], set[str]]
"""Those of the digests that something refers to now."""


def old_partitions(tables: TableArea, older_than_ms: int) -> list[tuple[str, LogPartition]]:
    """(folder, partition) of each day of the prediction log whose every row is older than
    `older_than_ms`: days are UTC, a partition goes once its whole day is past the age."""
    found = []
    for table in LOG_TABLES:
        for folder in sorted(tables.fs.glob(f"{tables.folder(table)}/deployment=*/date=*")):
            deployment_part, date_part = folder.rstrip("/").split("/")[-2:]
            day = _day(date_part.removeprefix("date="))
            if day is None or (day + 1) * DAY_MS > older_than_ms:
                continue
            files = [
                info for info in tables.fs.find(folder, detail=True).values() if info.get("type") == "file"
            ]
            size = sum(int(info.get("size") or 0) for info in files)
            deployment = deployment_part.removeprefix("deployment=")
            found.append((folder, LogPartition(table, deployment, date_part[5:], len(files), size)))
    return found


def remove_partition(tables: TableArea, folder: str) -> None:
    """Remove one partition's folder (and what is in it)."""
    with contextlib.suppress(FileNotFoundError):  # another collection took it
        tables.fs.rm(folder, recursive=True)


def _day(text: str) -> int | None:
    """Days since the epoch of a `YYYY-MM-DD` partition value; None if it is not one."""
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%d")) // 86_400
    except (ValueError, OverflowError):
        return None


def sweep_blobs(
    blobs: BlobStore, referenced: Referenced, modified_before: float, *, dry_run: bool
) -> Iterator[RemovedBlob]:
    """The unreferenced blobs last modified before `modified_before` (seconds since the
    epoch), each removed as it is yielded unless `dry_run`."""
    batch: list[StoredBlob] = []
    for stored in blobs.stored():
        if stored.modified < modified_before:
            batch.append(stored)
        if len(batch) >= _BATCH:
            yield from _sweep(blobs, referenced, batch, modified_before, dry_run)
            batch = []
    yield from _sweep(blobs, referenced, batch, modified_before, dry_run)


def _sweep(
    blobs: BlobStore, referenced: Referenced, batch: list[StoredBlob], modified_before: float, dry_run: bool
) -> Iterator[RemovedBlob]:
    if not batch:
        return
    needed = referenced([b.digest for b in batch])  # asked now: right before the removals
    for stored in batch:
        if stored.digest in needed:
            continue
        if dry_run or blobs.remove(stored.digest, modified_before=modified_before):
            yield RemovedBlob(stored.digest, stored.size)
