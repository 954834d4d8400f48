"""A contract's rules about personal data: which columns fail validation (`forbid`), and the
masking and hashing applied when data is registered under the contract, before its digest is
taken and before anything is stored, so a dataset version never holds the raw values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from loopline.core.datasets import Failure
from loopline.data.ingest import StagedTable, rewrite, stage
from loopline.profiling.pii import (
    SAMPLE_SIZE,
    PersonalData,
    detect_column,
    detect_parquet,
    detect_table,
    detectable,
)
from loopline.profiling.redaction import redact_table
from loopline.profiling.summary import quote
from loopline.services import DataSource
from loopline.specs.contract import Contract

CHECK = "personal_data"


def treatments(contract: Contract) -> dict[str, str]:
    """The columns the contract masks or hashes, with their treatment."""
    return {
        name: rule.personal_data
        for name, rule in contract.columns.items()
        if rule.personal_data in ("mask", "hash")
    }


def forbidden(contract: Contract) -> set[str]:
    """The columns the contract forbids by name."""
    return {name for name, rule in contract.columns.items() if rule.personal_data == "forbid"}


def personal_data_failures(
    con: Any, contract: Contract, types: dict[str, pa.DataType], row: str
) -> tuple[list[Failure], int]:
    """The failures of the contract's personal-data rules on relation `numbered` of `con`
    (each row's number in column `row`), and how many checks they made. A failure names the
    column and the kind of data found, never a value."""
    banned = [n for n in types if n in forbidden(contract)]
    scanned = list(banned)
    if contract.personal_data == "forbid":
        kept = set(treatments(contract)) | set(banned)
        scanned += [n for n in types if n not in kept]
    if not scanned:
        return [], 0
    found = _detect(con, [n for n in scanned if detectable(types[n])], row)
    present = _present(con, scanned)
    failures = []
    for name in scanned:
        kind = found.get(name)
        if name in banned:
            what = f"holds personal data ({kind.describe()}); " if kind else ""
            failures.append(
                Failure(CHECK, name, present[name], f"{what}the contract forbids this column: drop it")
            )
        elif kind is not None:
            failures.append(
                Failure(
                    CHECK,
                    name,
                    present[name],
                    f"holds personal data ({kind.describe()}), which the contract forbids: drop the "
                    "column, or give it personal_data: mask or hash",
                )
            )
    return failures, len(banned) + (contract.personal_data == "forbid")


def _present(con: Any, names: list[str]) -> dict[str, int]:
    """How many rows hold a value in each column."""
    counts = ", ".join(f"count({quote(n)})" for n in names)
    row = con.execute(f"SELECT {counts} FROM data").fetchall()[0]
    return {n: int(c) for n, c in zip(names, row, strict=True)}


def _detect(con: Any, names: list[str], row: str) -> dict[str, PersonalData]:
    """The personal data of `names`, from evenly spaced rows (a few times the sample size,
    so that columns with nulls still fill their sample)."""
    if not names:
        return {}
    rows = int(con.execute("SELECT count(*) FROM data").fetchall()[0][0])  # fetched whole: done
    step = max(1, rows // (4 * SAMPLE_SIZE))
    columns = ", ".join(quote(n) for n in names)
    table = con.sql(f"SELECT {columns} FROM numbered WHERE {row} % {int(step)} = 0").to_arrow_table()
    flagged = {}
    for name in names:
        kind = detect_column(name, table.column(name))
        if kind is not None:
            flagged[name] = kind
    return flagged


def scan(data: DataSource, encoding: str = "utf-8") -> dict[str, PersonalData]:
    """The personal data in `data` (a frame, an Arrow table, a CSV or Parquet file), column by
    column, without storing anything: a file is staged in a temporary folder, then removed."""
    import tempfile

    if isinstance(data, pa.Table):
        return detect_table(data)
    with tempfile.TemporaryDirectory(prefix="loopline-scan-") as tmp:
        staged = stage(data, Path(tmp, "data.parquet"), None, encoding)
        return detect_parquet(staged.path)


def apply_treatments(staged: StagedTable, contract: Contract, key: bytes | None, target: Path) -> StagedTable:
    """`staged` with the columns the contract masks or hashes treated, written to `target`
    (with its own digest); `staged` itself when the contract treats none of its columns.
    Hashing without a key is refused before anything is written."""
    treated = {n: t for n, t in treatments(contract).items() if n in staged.schema.names}
    if not treated:
        return staged
    redact_table(staged.schema.empty_table(), treated, key)  # refuses a hash without a key, early
    return rewrite(staged, target, lambda table: redact_table(table, treated, key))
