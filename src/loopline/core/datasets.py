"""Entities of the dataset registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopline.core.errors import InvalidInput
from loopline.core.names import dataset_name


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
