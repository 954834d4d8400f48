"""Entities of the dataset registry."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from loopline.core.errors import InvalidInput
from loopline.core.names import dataset_name

VALIDATION_TAG = "data_validation"  # a run's tag showing its validation verdict; only validation sets it


@dataclass(frozen=True, slots=True)
class DataValidation:
    """A run's data checked against a contract, as the validation service recorded it: the
    evidence the `data_validation` promotion gate reads."""

    id: int
    run_id: str
    passed: bool
    source: str  # what was checked, for people
    contract_digest: str  # sha256 of the contract's YAML
    report: dict[str, Any]
    created_at: int
    created_by: str


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One version of a dataset: named by the hash of its rows, with its schema, per-column
    summary, source and blobs."""

    name: str
    version: int
    digest: str  # sha256 over column names, types and values: equal data, equal digest
    rows: int
    size: int  # bytes of the stored Parquet file
    columns: list[dict[str, Any]]  # per column: name, type, and its profile summary
    source: str  # where the rows came from, for people (never a secret)
    data_blob: str  # sha256 of the Parquet file in the artifact store
    reference_blob: str  # sha256 of the drift reference profile (JSON)
    created_at: int
    created_by: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    erased_at: int | None = None  # when an erasure removed its rows (its data is gone)
    erased_into: int | None = None  # the version that holds its other rows; None if none was left

    @property
    def uri(self) -> str:
        """`datasets:/NAME/VERSION`."""
        return f"datasets:/{self.name}/{self.version}"

    @property
    def schema(self) -> dict[str, str]:
        """Column name to type, in column order."""
        return {c["name"]: c["type"] for c in self.columns}


def parse_dataset_ref(ref: str) -> tuple[str, int | None]:
    """`name`, `name@3` or `datasets:/name/3` as (name, version or None for the newest)."""
    text = ref.removeprefix("datasets:/")
    name, sep, version = text.replace("/", "@", 1).partition("@")
    if not sep:
        return dataset_name(name), None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"dataset reference {ref!r}: the version must be a positive number")
    return dataset_name(name), int(version)


@dataclass
class Failure:
    # present, type, extra_column, not_null, null_share, min, max, allowed, unique, pattern,
    # rows, or the name of a custom check
    check: str
    column: str | None
    count: int  # offending rows (1 for a rule about the schema)
    detail: str
    samples: list[dict[str, Any]] = field(default_factory=list)  # offending rows, with their number as "_row"


@dataclass
class ValidationReport:
    source: str
    rows: int
    checks: int
    failures: list[Failure]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "source": self.source,
            "rows": self.rows,
            "checks": self.checks,
            "failures": [asdict(f) for f in self.failures],
        }
