"""The dataset service's interface: versioned tables, named by the hash of their rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from loopline.core.datasets import DatasetVersion, DataValidation, ValidationReport
from loopline.core.entities import Principal

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopline.profiling.diff import DatasetDiff
    from loopline.profiling.profile import ReferenceProfile
    from loopline.specs.contract import Contract

DataSource: TypeAlias = "pd.DataFrame | pa.Table | str | Path"
"""What a dataset is registered from: a frame, an Arrow table, a CSV or Parquet path, or the
text of a SQL query (with `sql_url`)."""
Progress: TypeAlias = Callable[[int, "int | None"], None]
"""Called with (done, total) as long work advances; total is None when unknown."""


class Datasets(Protocol):
    """Dataset versions with their schema, profiles and data, acting as `principal`."""

    principal: Principal

    def register(
        self,
        name: str,
        data: DataSource,
        *,
        sql_url: str | None = None,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        encoding: str = "utf-8",
        progress: Progress | None = None,
        contract: Contract | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Store `data` as the next version of dataset `name`; returns it and whether it is
        new. Identical rows give back the version that holds them. Under a `contract`, data
        that breaks it is refused and the columns it masks or hashes are stored so."""

    def get(self, ref: str, version: int | None = None) -> DatasetVersion:
        """A version by reference (`name`, `name@3`, `datasets:/name/3`); the newest by default."""

    def list_datasets(self) -> list[DatasetVersion]:
        """The newest version of every dataset."""

    def versions(self, name: str) -> list[DatasetVersion]:
        """Every version of a dataset, oldest first."""

    def versions_with_digest(self, digest: str) -> list[DatasetVersion]:
        """The versions whose rows have this content hash."""

    def local_path(self, version: DatasetVersion) -> Path:
        """A local Parquet file of the version's rows, verified, for DuckDB or Arrow to read."""

    def read(self, version: DatasetVersion, columns: Sequence[str] | None = None) -> pa.Table:
        """The version's rows (or some of its columns) as an Arrow table."""

    def reference_profile(self, version: DatasetVersion) -> ReferenceProfile:
        """The drift reference profile computed when the version was registered."""

    def diff(self, old: DatasetVersion, new: DatasetVersion) -> DatasetDiff:
        """What changed between two versions, from their stored profiles."""

    def validate(
        self,
        data: Any,
        contract: Contract,
        *,
        run_id: str | None = None,
        samples: int = 5,
        source: str | None = None,
    ) -> ValidationReport:
        """Check data (a frame, a CSV or Parquet path, a `DatasetVersion`) against a contract;
        with `run_id`, record the verdict on that RUNNING run for the promotion gate."""

    def validations(self, run_id: str) -> list[DataValidation]:
        """The validations recorded on a run, oldest first."""
