"""Point-in-time-correct training sets: entity rows joined with the feature values that were
known at each row's time, out of core in DuckDB.

For an entity row at time t, a view gives the values of its newest row (by event time) among
those whose event time *and* created time are at or before t, if that row lies within the
view's TTL of t; otherwise nulls. Rows with equal keys and event time: the newest created
time wins. The join is a left join: every entity row comes back, once, in its order.

Bi-temporal correctness costs no inequality join: a feature row becomes *visible* at
max(event time, created time), so for each key the best row visible at any time is a running
arg-max over the rows in visible-time order (one window pass), and each entity row picks the
running state at its time with an `ASOF` join. Its cost grows with the rows, not with the
depth of each entity's history.

Times: a time without a zone is UTC; one with a zone is converted to UTC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from loopline.core.errors import InvalidInput
from loopline.core.features import RegisteredView

ENTITY_TIME = "event_timestamp"
_TYPE_FAMILIES = {
    "int64": (
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "HUGEINT",
    ),
    "float64": ("FLOAT", "DOUBLE", "DECIMAL", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"),
    "string": ("VARCHAR",),
    "bool": ("BOOLEAN",),
    "timestamp": (
        "TIMESTAMP",
        "TIMESTAMP WITH TIME ZONE",
        "DATE",
        "TIMESTAMP_NS",
        "TIMESTAMP_MS",
        "TIMESTAMP_S",
    ),
}
_TIME_TYPES = _TYPE_FAMILIES["timestamp"]
_SQL_TYPES = {
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}

OpenSource = Callable[[Any, RegisteredView, str], list[str]]
"""Creates relation `name` over a view's raw rows in the DuckDB connection; returns the
files it reads (DuckDB may read those and nothing else afterwards)."""


@dataclass(frozen=True)
class ViewRequest:
    view: RegisteredView
    features: Sequence[str]


def historical_features(
    entity_rows: pd.DataFrame | pa.Table | Path,
    requests: Sequence[ViewRequest],
    open_source: OpenSource,
    *,
    timestamp_column: str = ENTITY_TIME,
    full_names: bool = False,
    output: Path | None = None,
) -> pa.Table | None:
    """The entity rows with the requested features joined, in their order; written to
    `output` (Parquet) instead of returned when given."""
    if not requests:
        raise InvalidInput("ask for at least one feature (view:feature)")
    with connection() as con:
        files = _register_entities(con, entity_rows)
        columns = _describe(con, "entity_input")
        _check_entity_rows(con, columns, requests, timestamp_column)
        for index, request in enumerate(requests):
            files += open_source(con, request.view, f"raw_{index}")
        con.execute("SET allowed_paths = ?", [[*files, *([str(output)] if output is not None else [])]])
        con.execute("SET enable_external_access = false")  # a transform reads its source, nothing else
        con.execute("SET lock_configuration = true")
        at = quoted(timestamp_column)
        con.execute(
            f"CREATE TEMP VIEW entities AS SELECT *, CAST({at} AS TIMESTAMPTZ) AS __ts, "
            "row_number() OVER () AS __row FROM entity_input"
        )
        selected, joins = [], []
        names: dict[str, str] = {}
        for index, request in enumerate(requests):
            _prepare_view(con, index, request)
            view = request.view
            ttl = view.view.ttl_s
            joins.append(
                f"ASOF LEFT JOIN states_{index} s{index} ON "
                + " AND ".join(f'e."{k}" = s{index}."{k}"' for k in view.join_keys)
                + f" AND e.__ts >= s{index}.__visible"
            )
            for feature in request.features:
                shown = f"{view.view.name}__{feature}" if full_names else feature
                if shown in names or shown in columns:
                    raise InvalidInput(
                        f"feature {shown!r} comes from {names.get(shown, 'the entity rows')} and from "
                        f"{view.ref}: ask with full_names=True (columns named view__feature)"
                    )
                names[shown] = view.ref
                value = f's{index}.best."{feature}"'
                if ttl is not None:
                    age = f"e.__ts - s{index}.best.__event"
                    value = f"CASE WHEN {age} <= INTERVAL '{ttl} seconds' THEN {value} END"
                selected.append(f'{value} AS "{shown}"')
        query = (
            f"SELECT e.* EXCLUDE (__ts, __row), {', '.join(selected)} FROM entities e "
            + " ".join(joins)
            + " ORDER BY e.__row"
        )
        try:
            if output is not None:
                literal = "'" + str(output).replace("'", "''") + "'"
                con.execute(f"COPY ({query}) TO {literal} (FORMAT PARQUET)")
                return None
            table: pa.Table = con.sql(query).to_arrow_table()
            return table
        except duckdb_error() as exc:
            raise InvalidInput(f"joining the features failed: {_short(exc)}") from None


@contextlib.contextmanager
def connection() -> Iterator[Any]:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")  # a time without a zone is UTC
        yield con
    finally:
        con.close()


def duckdb_error() -> type[Exception]:
    import duckdb

    return duckdb.Error


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:400]


def _register_entities(con: Any, rows: pd.DataFrame | pa.Table | Path) -> list[str]:
    if isinstance(rows, pd.DataFrame):
        con.register("entity_input", pa.Table.from_pandas(rows, preserve_index=False))
        return []
    if isinstance(rows, pa.Table):
        con.register("entity_input", rows)
        return []
    path = Path(rows)
    if not path.is_file():
        raise InvalidInput(f"entity rows {path} do not exist")
    literal = "'" + str(path).replace("'", "''") + "'"
    reader = "read_csv_auto" if path.suffix.lower() == ".csv" else "read_parquet"
    con.execute(f"CREATE TEMP VIEW entity_input AS SELECT * FROM {reader}({literal})")
    return [str(path)]


def quoted(name: str) -> str:
    """A column name as a SQL identifier. The time column is named by the caller (a remote one
    too) and the entity rows' columns are theirs: a quote in it must not end the identifier."""
    return '"' + name.replace('"', '""') + '"'


def _describe(con: Any, relation: str) -> dict[str, str]:
    return {name: str(kind) for name, kind, *_ in con.execute(f"DESCRIBE {relation}").fetchall()}


def _check_entity_rows(
    con: Any, columns: dict[str, str], requests: Sequence[ViewRequest], timestamp_column: str
) -> None:
    if timestamp_column not in columns:
        raise InvalidInput(
            f"the entity rows have no time column {timestamp_column!r} (columns: {', '.join(columns)}); "
            "name it with timestamp_column="
        )
    if not columns[timestamp_column].startswith(_TIME_TYPES):
        raise InvalidInput(
            f"entity rows: column {timestamp_column!r} is {columns[timestamp_column]}, not a time"
        )
    for request in requests:
        for key in request.view.join_keys:
            if key not in columns:
                raise InvalidInput(
                    f"the entity rows have no column {key!r}, the join key of feature view {request.view.ref}"
                )
    checked = sorted({k for r in requests for k in r.view.join_keys} | {timestamp_column})
    for column in checked:
        row = con.execute(
            f"SELECT n FROM (SELECT row_number() OVER () - 1 AS n, {quoted(column)} AS v FROM entity_input) "
            "WHERE v IS NULL LIMIT 1"
        ).fetchone()
        if row is not None:
            raise InvalidInput(f"entity rows: column {column!r} is null at row {row[0]}; every row needs it")


@dataclass(frozen=True)
class Shaped:
    """A view's rows in DuckDB, checked, and the SQL expressions its queries are built from."""

    relation: str
    keys: str  # the join keys, quoted, comma-separated
    event: str
    created: str
    visible: str  # when a row became known: max(event time, created time)
    values: str  # struct fields of the requested features, cast to their declared types
    not_null: str


def shape(con: Any, index: int, request: ViewRequest) -> Shaped:
    """Relation raw_{index} through the view's transform, its columns and types checked
    against the view's definition."""
    registered, view = request.view, request.view.view
    where = f"feature view {registered.ref}"
    relation = f"raw_{index}"
    if view.transform:
        try:
            con.execute(f"CREATE OR REPLACE TEMP VIEW source AS SELECT * FROM {relation}")
            con.execute(f"CREATE TEMP TABLE shaped_{index} AS {view.transform}")  # bound now, to this source
        except duckdb_error() as exc:
            raise InvalidInput(f"{where}: its transform failed: {_short(exc)}") from None
        relation = f"shaped_{index}"
    columns = _describe(con, relation)
    for column, role in [
        *((k, "join key") for k in registered.join_keys),
        (view.event_time, "event time"),
    ] + ([(view.created_time, "created time")] if view.created_time else []):
        if column not in columns:
            raise InvalidInput(
                f"{where}: its source has no {role} column {column!r} (it has {', '.join(columns)})"
            )
    for column in [view.event_time, *([view.created_time] if view.created_time else [])]:
        if not columns[column].startswith(_TIME_TYPES):
            raise InvalidInput(f"{where}: column {column!r} is {columns[column]} in its source, not a time")
    declared = {f.name: f.dtype for f in view.features}
    for feature in request.features:
        if feature not in columns:
            raise InvalidInput(f"{where}: its source has no feature column {feature!r}")
        found = columns[feature].split("(")[0]
        if found not in _TYPE_FAMILIES[declared[feature]]:
            raise InvalidInput(
                f"{where}: column {feature!r} is {columns[feature]} in its source, but the view declares it "
                f"{declared[feature]}: the source changed type under this version; apply the definition "
                "again (a new version) or fix the source"
            )
    event = f'CAST("{view.event_time}" AS TIMESTAMPTZ)'
    created = f'CAST("{view.created_time}" AS TIMESTAMPTZ)' if view.created_time else event
    return Shaped(
        relation=relation,
        keys=", ".join(f'"{k}"' for k in registered.join_keys),
        event=event,
        created=created,
        visible=f"greatest({event}, {created})",
        values=", ".join(f'"{f}" := CAST("{f}" AS {_SQL_TYPES[declared[f]]})' for f in request.features),
        not_null=" AND ".join(
            [*(f'"{k}" IS NOT NULL' for k in registered.join_keys), f"{event} IS NOT NULL"]
        ),
    )


# The best row: newest event time, then newest created time, then last in the source.
BEST = "struct_pack(e := {event}, c := {created}, n := __source_row)"
NUMBERED = "(SELECT *, row_number() OVER () AS __source_row FROM {relation})"


def _prepare_view(con: Any, index: int, request: ViewRequest) -> None:
    """states_{index}: per key, the best row visible at each visible time."""
    v = shape(con, index, request)
    order = BEST.format(event=v.event, created=v.created)
    # RANGE: rows that become visible at the same time share one state, all of them in it.
    con.execute(
        f"CREATE TEMP VIEW states_{index} AS SELECT {v.keys}, {v.visible} AS __visible, "
        f"arg_max(struct_pack(__event := {v.event}, {v.values}), {order}) "
        f"OVER (PARTITION BY {v.keys} ORDER BY {v.visible} RANGE UNBOUNDED PRECEDING) AS best "
        f"FROM {NUMBERED.format(relation=v.relation)} WHERE {v.not_null}"
    )
