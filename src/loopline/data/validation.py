"""Validating data against a contract, with DuckDB: every rule of the contract becomes one
filtered count in a single scan, so a table of any size is checked in one pass, out of
core; only failed rules cost another pass, to fetch a few offending rows with their row
numbers. Custom row checks are SQL conditions run in a sandbox (no file access, settings
locked), so a contract cannot read or write anything but the table under test.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.core.datasets import Failure, ValidationReport
from loopline.core.errors import InvalidInput
from loopline.data.personal_data import personal_data_failures
from loopline.profiling.fingerprint import canonical_schema
from loopline.profiling.summary import quote
from loopline.specs.contract import ColumnRule, Contract, RowBounds, RowCheck

SAMPLES = 5
MAX_ALLOWED_INFERRED = 20  # a text column with at most this many values gets an allowed list
MAX_SAMPLE_COLUMNS = 12
ROW = "__loopline_row__"  # the row number beside the data, shown as "_row" in samples


# --- opening the data -------------------------------------------------------------------


@contextlib.contextmanager
def _opened(data: Any) -> Iterator[tuple[Any, pa.Schema, str]]:
    """A sandboxed DuckDB connection with the data as relation `data` (and as `numbered`,
    with each row's number in ROW); the data's schema; a label for reports."""
    import duckdb

    with contextlib.ExitStack() as stack:
        con = stack.enter_context(duckdb.connect())
        if isinstance(data, pd.DataFrame | pa.Table):
            from loopline.profiling.fingerprint import frame_to_arrow

            table = frame_to_arrow(data) if isinstance(data, pd.DataFrame) else data
            label = "a DataFrame" if isinstance(data, pd.DataFrame) else "an Arrow table"
            numbers = pa.array(np.arange(table.num_rows, dtype=np.int64))
            con.register("numbered", table.append_column(ROW, numbers))  # no window pass for samples
            con.execute(f"CREATE VIEW data AS SELECT * EXCLUDE ({ROW}) FROM numbered")
            schema = table.schema
        else:
            path, label = _parquet(data, stack)
            schema = _parquet_schema(path)
            # DuckDB reads the file itself, out of core, and may read nothing else.
            con.execute("SET allowed_paths = [?]", [str(path)])
            literal = "'" + str(path).replace("'", "''") + "'"
            con.execute(f"CREATE VIEW data AS SELECT * FROM read_parquet({literal})")
            con.execute(
                f"CREATE VIEW numbered AS SELECT * EXCLUDE (file_row_number), file_row_number AS {ROW} "
                f"FROM read_parquet({literal}, file_row_number = true)"
            )
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        yield con, canonical_schema(schema), label


@dataclass(frozen=True)
class StoredTable:
    """A stored dataset version's Parquet file, named by its URI in reports."""

    file: Path
    uri: str

    def path(self) -> Path:
        return self.file


def _parquet(data: Any, stack: contextlib.ExitStack) -> tuple[Path, str]:
    """The Parquet file holding `data`: a dataset's, a Parquet path, or a CSV staged as one."""
    from loopline.data.ingest import PARQUET_SUFFIXES, stage_file

    if callable(getattr(data, "path", None)) and hasattr(data, "uri"):  # a registered dataset
        return Path(data.path()), str(data.uri)
    if not isinstance(data, str | Path):
        raise InvalidInput(
            f"cannot validate a {type(data).__name__}: give a DataFrame, a CSV or Parquet path, or a dataset"
        )
    path = Path(data).expanduser().resolve()
    if path.suffix.lower() in PARQUET_SUFFIXES and path.is_file():
        return path, path.name
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="loopline-validate-"))
    staged = stage_file(path, Path(tmp, "data.parquet"))  # CSV: the same strict reader as ingestion
    return staged.path, path.name


def _parquet_schema(path: Path) -> pa.Schema:
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{path.name} is not a readable Parquet file: {exc}") from None


# --- rules as SQL -----------------------------------------------------------------------

_TYPE_TESTS = {
    "integer": pa.types.is_integer,
    "number": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t),
    "string": pa.types.is_string,
    "boolean": pa.types.is_boolean,
    "timestamp": pa.types.is_timestamp,
    "date": pa.types.is_date,
    "any": lambda t: True,
}


@dataclass
class _Rule:
    check: str
    column: str | None
    predicate: str  # true for an offending row
    params: list[Any]
    detail: str
    screen: str | None = None  # a cheaper aggregate, non-zero when some row offends


def _column_rules(name: str, rule: ColumnRule, data_type: pa.DataType, typed: bool = True) -> list[_Rule]:
    """The rules of one column, as SQL; with `typed` False (its type is not the contract's)
    only those that hold for any type: nulls, uniqueness, patterns."""
    c = quote(name)
    rules = []
    if not rule.nullable:
        rules.append(_Rule("not_null", name, f"{c} IS NULL", [], "missing values where none are allowed"))
    elif rule.max_null_share is not None:
        rules.append(
            _Rule("null_share", name, f"{c} IS NULL", [], f"more than {rule.max_null_share:.1%} missing")
        )
    temporal = pa.types.is_temporal(data_type)
    cast = "CAST(? AS TIMESTAMP)" if temporal else "?"
    for bound, op in (("min", "<"), ("max", ">")) if typed else ():
        value = getattr(rule, bound)
        if value is not None:
            if not temporal and isinstance(value, str):
                raise InvalidInput(f"contract: column {name!r}: {bound} {value!r} is not a number")
            word = "below" if bound == "min" else "above"
            rules.append(_Rule(bound, name, f"{c} {op} {cast}", [value], f"values {word} {value}"))
    if rule.allowed is not None and typed:
        values = [str(v) for v in rule.allowed] if pa.types.is_string(data_type) else list(rule.allowed)
        marks = ", ".join("?" for _ in values) or "NULL"
        shown = ", ".join(map(str, rule.allowed[:10])) + (", ..." if len(rule.allowed) > 10 else "")
        rules.append(_Rule("allowed", name, f"{c} NOT IN ({marks})", values, f"values outside {{{shown}}}"))
    if rule.pattern is not None:
        rules.append(
            _Rule(
                "pattern",
                name,
                f"NOT regexp_full_match(CAST({c} AS VARCHAR), ?)",
                [rule.pattern],
                f"values not matching {rule.pattern!r}",
            )
        )
    if rule.unique:
        duplicated = f"{c} IN (SELECT {c} FROM data GROUP BY {c} HAVING count(*) > 1)"
        screen = f"count({c}) - count(DISTINCT {c})"
        rules.append(_Rule("unique", name, duplicated, [], "values that appear more than once", screen))
    return rules


def _custom_rule(check: RowCheck) -> _Rule:
    if ";" in check.condition:
        raise InvalidInput(f"contract: check {check.name!r}: a condition is one SQL expression, without ';'")
    detail = check.description or f"rows where {check.condition} is false"
    # As in a SQL CHECK constraint, NULL passes: missing values are the nullable rule's business.
    return _Rule(check.name, None, f"NOT coalesce(({check.condition}), true)", [], detail)


# --- validation ---------------------------------------------------------------------------


def validate(
    data: Any, contract: Contract, *, samples: int = SAMPLES, source: str | None = None
) -> ValidationReport:
    """Check `data` (a DataFrame, Arrow table, CSV or Parquet path, or registered dataset)
    against `contract`; the report lists each failed rule with its column, the number of
    offending rows and up to `samples` of them. `source` names the data in the report."""
    with _opened(data) as (con, schema, label):
        types = {f.name: f.type for f in schema}
        failures: list[Failure] = []
        rules: list[_Rule] = []
        for name, expected in contract.columns.items():
            if name not in types:
                if expected.required and expected.personal_data != "forbid":  # forbidden: best absent
                    failures.append(Failure("present", name, 1, "required column is missing"))
                continue
            found = types[name]
            if expected.type == "integer" and pa.types.is_floating(found):
                # integers with missing values, as pandas stores them: whole numbers pass
                c = quote(name)
                whole = f"{c} IS NOT NULL AND NOT (isfinite({c}) AND {c} = floor({c}))"
                rules.append(
                    _Rule("type", name, whole, [], "expected integer: values that are not whole numbers")
                )
            elif not _TYPE_TESTS[expected.type](found):
                failures.append(Failure("type", name, 1, f"expected {expected.type}, found {found}"))
                # the rules that do not depend on the type still run: one finding hides no other
                rules += _column_rules(name, expected, found, typed=False)
                continue
            rules += _column_rules(name, expected, found)
        if contract.extra_columns == "forbid":
            for name in types:
                if name not in contract.columns:
                    failures.append(Failure("extra_column", name, 1, "column not in the contract"))
        for check in contract.checks:
            rules.append(_custom_rule(check))
            _explain(con, rules[-1])
        counts = _count(con, rules)
        rows = counts.pop(0)
        failures += _row_bounds(contract.rows, rows)
        for rule, count in zip(rules, counts, strict=True):
            if rule.check == "null_share":
                limit = contract.columns[rule.column or ""].max_null_share or 0.0
                if rows == 0 or count / rows <= limit:
                    continue
                rule.detail += f": {count / rows:.1%}"
            if count:
                found = Failure(rule.check, rule.column, count, rule.detail)
                found.samples = _samples(con, rule, list(types), samples)
                failures.append(found)
        personal, personal_checks = personal_data_failures(con, contract, types, ROW)
        failures += personal
        bounded = contract.rows.min is not None or contract.rows.max is not None
        checks = len(contract.columns) + len(rules) + bounded + (contract.extra_columns == "forbid")
        checks += personal_checks
        return ValidationReport(source or label, rows, checks, failures)


def _explain(con: Any, rule: _Rule) -> None:
    """Bind a custom condition without scanning, so its mistakes are named as its own."""
    import duckdb

    try:
        con.execute(f"EXPLAIN SELECT count(*) FROM data WHERE {rule.predicate}", rule.params)
    except duckdb.Error as exc:
        raise InvalidInput(
            f"contract: check {rule.check!r}: the condition is not valid SQL here: {exc}"
        ) from None


def _count(con: Any, rules: list[_Rule]) -> list[int]:
    """The number of rows, then of offending rows per rule: one scan."""
    import duckdb

    selects = ["count(*)"] + [r.screen or f"count_if({r.predicate})" for r in rules]  # 6x faster than FILTER
    params = [p for r in rules if r.screen is None for p in r.params]
    try:
        counts = [int(v) for v in con.execute(f"SELECT {', '.join(selects)} FROM data", params).fetchone()]
        for i, rule in enumerate(rules, start=1):
            if rule.screen is not None and counts[i]:  # screened positive: now count the rows
                query = f"SELECT count_if({rule.predicate}) FROM data"
                counts[i] = int(con.execute(query, rule.params).fetchone()[0])
    except duckdb.Error as exc:
        raise InvalidInput(f"the contract cannot be checked on this data: {exc}") from None
    return counts


def _row_bounds(bounds: RowBounds, rows: int) -> list[Failure]:
    if bounds.min is not None and rows < bounds.min:
        return [Failure("rows", None, rows, f"{rows:,} rows, fewer than the {bounds.min:,} required")]
    if bounds.max is not None and rows > bounds.max:
        return [Failure("rows", None, rows, f"{rows:,} rows, more than the {bounds.max:,} allowed")]
    return []


def _samples(con: Any, rule: _Rule, names: list[str], limit: int) -> list[dict[str, Any]]:
    shown = [rule.column] if rule.column is not None else names[:MAX_SAMPLE_COLUMNS]
    columns = ", ".join(quote(n) for n in shown)
    query = (
        f"SELECT {ROW} AS _row, {columns} FROM numbered WHERE {rule.predicate} ORDER BY 1 LIMIT {int(limit)}"
    )
    cursor = con.execute(query, rule.params)
    labels = [d[0] for d in cursor.description]
    return [{k: _plain(v) for k, v in zip(labels, row, strict=True)} for row in cursor.fetchall()]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# --- inference ----------------------------------------------------------------------------


def infer_contract(data: Any) -> Contract:
    """A contract that `data` passes, to edit: types, nullability, observed ranges, the
    values of low-cardinality text columns, uniqueness of whole-number and text keys."""
    with _opened(data) as (con, schema, _):
        fields = [f for f in schema if not pa.types.is_nested(f.type)]
        selects = ["count(*)"]
        for f in fields:
            c = quote(f.name)
            selects.append(f"count(*) FILTER (WHERE {c} IS NULL)")
            ordered = not pa.types.is_boolean(f.type) and not pa.types.is_binary(f.type)
            selects.append(f"min({c}), max({c})" if ordered else "NULL, NULL")
            keyed = pa.types.is_integer(f.type) or pa.types.is_string(f.type) or pa.types.is_boolean(f.type)
            selects.append(f"count(DISTINCT {c})" if keyed else "NULL")
        found = iter(con.execute(f"SELECT {', '.join(selects)} FROM data").fetchone() or ())
        rows = int(next(found))
        contract = Contract(rows=RowBounds(min=1))
        for f in fields:
            nulls, low, high, distinct = next(found), next(found), next(found), next(found)
            rule = ColumnRule(type=_type_name(f.type), nullable=nulls > 0)
            if low is not None and not pa.types.is_string(f.type):
                rule.min, rule.max = _bound(low), _bound(high)
            if pa.types.is_string(f.type) and distinct is not None and 0 < distinct <= MAX_ALLOWED_INFERRED:
                query = f"SELECT DISTINCT {quote(f.name)} AS v FROM data WHERE v IS NOT NULL ORDER BY v"
                rule.allowed = [r[0] for r in con.execute(query).fetchall()]
            elif distinct is not None and rows > 1 and distinct == rows and not pa.types.is_boolean(f.type):
                rule.unique = True
            contract.columns[f.name] = rule
        return contract


def _type_name(data_type: pa.DataType) -> Any:
    for name in ("integer", "boolean", "string", "timestamp", "date", "number"):
        if _TYPE_TESTS[name](data_type):
            return name
    return "any"


def _bound(value: Any) -> float | str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float):
        return value if isinstance(value, float) else int(value)
    return str(value)
