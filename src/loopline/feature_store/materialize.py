"""Materialization: each entity's newest feature values, written to the online store.

A run takes the rows that became known (max of event and created time) after the view's
watermark and up to `end`, keeps the best row per key (newest event time, then created time,
then the later source row) with one aggregate that DuckDB spills to disk when it must, and
streams the result to the store in chunks: memory stays flat whatever the row count. The
watermark moves to `end` only once every chunk is written; a run killed before re-reads
from the old watermark, and since the store keeps a value only if it is newer than the one
it holds, nothing is lost and nothing is counted twice.
"""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime
from typing import Any

from loopline.core.features import RegisteredView
from loopline.feature_store.offline import BEST, NUMBERED, OpenSource, ViewRequest, connection, shape
from loopline.feature_store.online import OnlineStore, Row

# Declared with the service interface (a remote client returns it too); re-exported here.
from loopline.services.features import Materialized as Materialized

CHUNK_ROWS = 50_000
KEYS_PER_PASS = 100_000
MEMORY_LIMIT = "256MB"  # DuckDB's, for one materialization


def namespace(view: RegisteredView) -> str:
    """Where a version's values live in the online store: a new version starts afresh."""
    return view.ref


def materialize(
    view: RegisteredView,
    open_source: OpenSource,
    store: OnlineStore,
    *,
    end: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
    keys_per_pass: int = KEYS_PER_PASS,
) -> Materialized:
    """Write the newest values known since the watermark and up to `end` (default: now)."""
    until = end or datetime.now(UTC)
    until_us = int(until.timestamp() * 1_000_000)
    since_us = store.watermark(namespace(view))
    request = ViewRequest(view, [f.name for f in view.view.features])
    written = 0
    with connection() as con, tempfile.TemporaryDirectory(prefix="loopline-materialize-") as spill:
        # Bounded: what exceeds the limit (a large transform's table) spills to `spill`.
        con.execute("SET memory_limit = ?", [MEMORY_LIMIT])
        con.execute("SET temp_directory = ?", [spill])
        files = open_source(con, view, "raw_0")
        con.execute("SET allowed_paths = ?", [files])
        con.execute("SET enable_external_access = false")
        v = shape(con, 0, request)
        known = f"epoch_us({v.visible})"
        window = f"{known} <= {until_us}" + ("" if since_us is None else f" AND {known} > {since_us}")
        rows_in = f"{NUMBERED.format(relation=v.relation)} WHERE {v.not_null} AND {window}"
        # The aggregate holds one state per key: in passes over slices of the keys, so that it
        # stays within `keys_per_pass` keys, in memory and fast, however many keys there are.
        ((keys,),) = con.execute(f"SELECT approx_count_distinct(hash({v.keys})) FROM {rows_in}").fetchall()
        passes = max(1, math.ceil(keys / keys_per_pass))
        for part in range(passes):
            sliced = "" if passes == 1 else f" AND hash({v.keys}) % {passes} = {part}"
            reader = con.sql(
                f"SELECT {v.keys}, arg_max(struct_pack(__event := epoch_us({v.event}), __created := "
                f"epoch_us({v.created}), {v.values}), {BEST.format(event=v.event, created=v.created)}) "
                f"AS best FROM {rows_in}{sliced} GROUP BY ALL"
            ).to_arrow_reader(chunk_rows)
            for batch in reader:
                written += _write(store, view, batch.to_pydict())
    store.set_watermark(namespace(view), until_us)
    return Materialized(view.ref, since_us, until_us, written)


def _write(store: OnlineStore, view: RegisteredView, columns: dict[str, list[Any]]) -> int:
    rows: list[Row] = []
    for i, best in enumerate(columns["best"]):
        key = tuple(columns[name][i] for name in view.join_keys)
        values = {k: val for k, val in best.items() if not k.startswith("__")}
        rows.append((key, best["__event"], best["__created"], values))
    store.write(namespace(view), rows)
    return len(rows)
