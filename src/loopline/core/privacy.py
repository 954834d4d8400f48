"""What an erasure of one entity's personal data did: the report `loopline erase` prints.

The report names columns, deployments, datasets and counts; never the erased value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loopline.core.errors import InvalidInput

ERASED = "erased"  # the lineage relation from an erased dataset version to the one that replaced it
_COLUMN = re.compile(r"[^\x00-\x1f]{1,250}")


@dataclass(frozen=True, slots=True)
class LogErasure:
    """The rows removed from one deployment's prediction log, and the files that changed."""

    deployment: str
    predictions: int
    feedback: int
    errors: int
    files_rewritten: int
    files_removed: int  # files that held nothing else

    @property
    def rows(self) -> int:
        return self.predictions + self.feedback + self.errors


@dataclass(frozen=True, slots=True)
class DatasetErasure:
    """One dataset version that held the entity, and the version that replaced it."""

    dataset: str
    version: int
    rows: int  # rows of the entity it held
    replaced_by: int | None  # the version holding the other rows; None when no row was left
    blobs_removed: int  # its data and profile files deleted (0 in a dry run)
    blobs_kept: list[str] = field(default_factory=list)  # still referred to elsewhere: by what


@dataclass(frozen=True, slots=True)
class Unerased:
    """A place that may still hold the value, and why it was left."""

    where: str
    why: str


@dataclass(frozen=True, slots=True)
class Erasure:
    """The report of `erase`: per deployment and per dataset version what was removed, and
    what could not be. A dry run reports what an erasure would remove and changes nothing."""

    column: str
    dry_run: bool
    reason: str
    at: int
    logs: list[LogErasure] = field(default_factory=list)
    datasets: list[DatasetErasure] = field(default_factory=list)
    not_erased: list[Unerased] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Every row removed (or, in a dry run, to remove)."""
        return sum(log.rows for log in self.logs) + sum(d.rows for d in self.datasets)


def entity_column(column: str) -> str:
    """A column name to erase by: text without control characters, at most 250 characters."""
    if not _COLUMN.fullmatch(column or ""):
        raise InvalidInput(
            f"column {column[:80]!r}: give the name of a column, 1 to 250 printable characters"
        )
    return column


def parse_entity(text: str) -> tuple[str, str]:
    """`COLUMN=VALUE` (as `--entity` takes it) as (column, value); the value may hold `=`."""
    column, sep, value = text.partition("=")
    if not sep or not column or not value:
        raise InvalidInput("--entity takes COLUMN=VALUE, e.g. email=ada@example.com")
    return entity_column(column), value
