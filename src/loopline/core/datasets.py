"""Entities of the dataset registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DatasetVersion:
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
        return f"datasets:/{self.name}/{self.version}"

    @property
    def schema(self) -> dict[str, str]:
        return {c["name"]: c["type"] for c in self.columns}
