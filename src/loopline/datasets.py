"""Datasets from the SDK: `loopline.datasets.register(...)` and friends.

import loopline as ll
data = ll.datasets.register("customers", "customers.csv")   # versioned, profiled
frame = data.to_pandas()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.core.datasets import DatasetVersion

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopline.core.datasets import ValidationReport
    from loopline.profiling.diff import DatasetDiff
    from loopline.profiling.pii import PersonalData
    from loopline.profiling.profile import ReferenceProfile
    from loopline.services import Datasets, DataSource
    from loopline.specs.contract import Contract


@dataclass(frozen=True)
class Dataset:
    """A stored dataset version, with what it takes to read it back."""

    info: DatasetVersion
    service: Datasets

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.info.name

    @property
    def version(self) -> int:
        """The version number."""
        return self.info.version

    @property
    def digest(self) -> str:
        """The sha256 of its rows (names, types, values): the same data has the same digest."""
        return self.info.digest

    @property
    def rows(self) -> int:
        """How many rows it holds."""
        return self.info.rows

    @property
    def uri(self) -> str:
        """`datasets:/NAME/VERSION`."""
        return self.info.uri

    @property
    def schema(self) -> dict[str, str]:
        """Column name to type, in column order."""
        return self.info.schema

    def path(self) -> Path:
        """The verified Parquet file, e.g. for `duckdb.read_parquet(str(ds.path()))`."""
        return self.service.local_path(self.info)

    def to_arrow(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Its rows (or some columns) as an Arrow table, read from the verified file."""
        return self.service.read(self.info, columns)

    def to_pandas(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Its rows (or some columns) as a pandas DataFrame."""
        frame: pd.DataFrame = self.to_arrow(columns).to_pandas()
        return frame

    def profile(self) -> ReferenceProfile:
        """The drift reference profile computed at registration."""
        return self.service.reference_profile(self.info)


def _service() -> Datasets:
    from loopline._sdk import dataset_service

    return dataset_service()


def register(
    name: str,
    data: DataSource,
    *,
    sql_url: str | None = None,
    description: str = "",
    tags: Mapping[str, Any] | None = None,
    encoding: str = "utf-8",
    contract: Contract | str | Path | None = None,
) -> Dataset:
    """Store `data` as a version of dataset `name`: a DataFrame or Arrow table, a CSV or
    Parquet file of any size (read in chunks), or the text of a SQL query run on `sql_url`.
    The same rows give back the same version. Inside a run, the run records it as an input.
    Under a `contract` (a YAML path or a `Contract`), data that breaks it raises
    DataValidationFailed and nothing is stored; the columns whose rule says
    `personal_data: mask` or `hash` are stored masked or as keyed hashes."""
    from loopline._sdk import active_run
    from loopline.progress import progress_bar
    from loopline.specs.contract import Contract

    rules = contract if isinstance(contract, Contract) or contract is None else Contract.load(contract)
    service = _service()
    label = f"registering {name}"
    with progress_bar(label, unit_bytes=sql_url is None) as progress:
        version, _ = service.register(
            name,
            data,
            sql_url=sql_url,
            description=description,
            tags=tags,
            encoding=encoding,
            progress=progress,
            contract=rules,
        )
    dataset = Dataset(version, service)
    run = active_run()
    if run is not None:
        run.log_input(dataset, dataset.name)
    return dataset


def get(ref: str, version: int | None = None) -> Dataset:
    """`name` (the newest version), `name@3` or `datasets:/name/3`."""
    service = _service()
    return Dataset(service.get(ref, version), service)


def list_datasets() -> list[DatasetVersion]:
    """The newest version of every dataset."""
    return _service().list_datasets()


def diff(old: str, new: str) -> DatasetDiff:
    """Schema and profile changes from dataset version `old` to `new` (references as in `get`)."""
    service = _service()
    return service.diff(service.get(old), service.get(new))


def validate(data: Any, contract: Contract | str | Path, *, require: bool = False) -> ValidationReport:
    """Check `data` (a frame, a CSV or Parquet path, a `Dataset`) against a contract (a
    YAML path or a `Contract`). Inside a run, the verdict is recorded on the run (which the
    `data_validation` promotion gate reads; the run's tag of that name shows it) and the
    report is kept as `data_validation.json`. With `require`, a failure raises
    DataValidationFailed carrying the report."""
    import json

    from loopline._sdk import active_run
    from loopline.core.errors import DataValidationFailed
    from loopline.specs.contract import Contract

    rules = contract if isinstance(contract, Contract) else Contract.load(contract)
    run = active_run()
    checked = data.info if isinstance(data, Dataset) else data
    report = _service().validate(checked, rules, run_id=None if run is None else run.id)
    if run is not None:
        run.log_text(json.dumps(report.to_dict(), indent=2, default=str), "data_validation.json")
    if require and not report.passed:
        first = report.failures[0]
        where = f" in column {first.column!r}" if first.column else ""
        raise DataValidationFailed(
            f"{report.source} broke {len(report.failures)} rule(s) of its contract; first: "
            f"{first.check}{where}, {first.count:,} row(s): {first.detail}",
            report,
        )
    return report


def find_personal_data(data: DataSource, *, encoding: str = "utf-8") -> dict[str, PersonalData]:
    """The columns of `data` (a frame, an Arrow table, a CSV or Parquet file) that hold
    personal data, and what kind, found as registration finds them; nothing is stored. A
    registered version's columns say it already (`personal_data` in `Dataset.info.columns`)."""
    from loopline.data.personal_data import scan

    return scan(data, encoding)


def infer_contract(data: Any) -> Contract:
    """A contract `data` passes (types, nulls, ranges, categories, keys), to edit and keep."""
    from loopline.data.validation import infer_contract as infer

    return infer(data)
