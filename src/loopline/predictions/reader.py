"""Reading one deployment's prediction log: DuckDB over only the Parquet files of the days
asked for, streamed (never loaded whole), in bounded memory.

Its tables become views: `predictions`, `feedback` (every label sent), `labels` (the newest
label of each answered row: labels may be corrected, and they arrive after their
predictions) and `errors`. A table with no file yet is an empty view of the columns queries
need.

A client may send the same request id twice. A label then belongs to the answer with that
id and row that was the newest when the label came (the first one, for a label older than
every answer: clocks of several hosts differ). An answer is (request id, row, at_ms); a
shadow's row carries the time of the answer it shadowed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from typing import Any

from loopline.artifacts.tables import TableArea
from loopline.predictions.log import DAY_MS, ERRORS, FEEDBACK, PREDICTIONS, day_partition

log = logging.getLogger(__name__)
_DATE = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
LABELS = "labels"
# How a prediction row `p` meets its label `l`: by request, row within the request, and answer.
LABELS_JOIN = (
    '{p}.request_id = {l}.request_id AND CAST({p}."row" AS BIGINT) = CAST({l}."row" AS BIGINT) '
    "AND {p}.at_ms = {l}.answered_at"
)
# The labelled rows' answers: one answer (nearly always) or several (a reused request id).
_ANSWERS = f"""SELECT request_id, CAST("row" AS BIGINT) AS "row", min(at_ms) AS first_at,
        max(at_ms) AS last_at
    FROM {PREDICTIONS} WHERE request_id IN (SELECT request_id FROM {FEEDBACK}) GROUP BY ALL"""
_NEWEST = f"""SELECT DISTINCT ON (request_id, "row") request_id, CAST("row" AS BIGINT) AS "row", label
    FROM {FEEDBACK} ORDER BY request_id, "row", at_ms DESC"""
# Each answer of a row answered more than once, with the span of label times that are its.
_SPANS = f"""SELECT request_id, "row", at_ms, lag(at_ms) OVER w AS previous_at, lead(at_ms) OVER w AS next_at
    FROM (SELECT DISTINCT p.request_id, CAST(p."row" AS BIGINT) AS "row", p.at_ms FROM {PREDICTIONS} p
          SEMI JOIN answers a ON p.request_id = a.request_id AND CAST(p."row" AS BIGINT) = a."row"
                             AND a.first_at < a.last_at)
    WINDOW w AS (PARTITION BY request_id, "row" ORDER BY at_ms)"""
_LABELS = f"""WITH answers AS MATERIALIZED ({_ANSWERS})
    SELECT n.request_id, n."row", a.first_at AS answered_at, CAST(n.label AS VARCHAR) AS label
    FROM ({_NEWEST}) n JOIN answers a ON n.request_id = a.request_id AND n."row" = a."row"
    WHERE a.first_at = a.last_at
    UNION ALL
    SELECT * FROM (
        SELECT DISTINCT ON (s.request_id, s."row", s.at_ms) s.request_id, s."row", s.at_ms AS answered_at,
               CAST(f.label AS VARCHAR) AS label
        FROM ({_SPANS}) s JOIN {FEEDBACK} f
          ON f.request_id = s.request_id AND CAST(f."row" AS BIGINT) = s."row"
         AND (s.previous_at IS NULL OR f.at_ms >= s.at_ms) AND (s.next_at IS NULL OR f.at_ms < s.next_at)
        ORDER BY s.request_id, s."row", s.at_ms, f.at_ms DESC)"""  # labels as text, whatever a file holds
# What queries need of each table when nothing was logged yet.
_KEYS = 'NULL::VARCHAR AS request_id, NULL::INTEGER AS "row", NULL::BIGINT AS at_ms'
_EMPTY = {
    PREDICTIONS: f"{_KEYS}, NULL::VARCHAR AS arm, NULL::INTEGER AS version, NULL::DOUBLE AS latency_ms, "
    "NULL::DOUBLE AS prediction",
    FEEDBACK: f"{_KEYS}, NULL::DOUBLE AS label",
    ERRORS: f"{_KEYS}, NULL::VARCHAR AS arm, NULL::INTEGER AS version",
}
MEMORY_LIMIT = "1GB"  # DuckDB spills to disk beyond it: a report over any log fits in this


def day_of(path: str) -> str:
    """The `date=YYYY-MM-DD` partition a log file is in ('' if none)."""
    found = _DATE.search(path)
    return found.group(1) if found else ""


class LogReader:
    """The prediction log of `deployment`, from `since_ms` on (all of it by default)."""

    def __init__(self, tables: TableArea, deployment: str, since_ms: int | None = None) -> None:
        self._tables = tables
        self._deployment = deployment
        self._since_ms = since_ms

    def files(self, table: str, since_ms: int | None = None) -> list[str]:
        """The files of `table` on the days from `since_ms` (or the reader's start) on, as
        DuckDB names them (decrypted copies, when the area is encrypted)."""
        since = since_ms if since_ms is not None else self._since_ms
        since_day = day_partition(since // DAY_MS) if since is not None else ""
        found = [
            p for p in self._tables.files(table, [("deployment", self._deployment)]) if day_of(p) >= since_day
        ]
        if self._tables.local or self._tables.keyring is not None:
            return self._tables.readable(found)
        protocol = self._tables.fs.protocol
        scheme = protocol if isinstance(protocol, str) else protocol[0]
        return [f"{scheme}://{p}" for p in found]

    def connect(self) -> Any:
        """A DuckDB connection with the log's tables as views."""
        import duckdb

        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT})
        if not self._tables.local and self._tables.keyring is None:
            con.register_filesystem(self._tables.fs)  # DuckDB reads the object store through fsspec
        for table in (PREDICTIONS, FEEDBACK, ERRORS):
            try:
                con.execute(f"CREATE VIEW {table} AS {self._scan(table)}")
            except duckdb.Error:
                self._tables.raise_if_sealed(self._tables.files(table, [("deployment", self._deployment)]))
                raise
        # Computed once per connection: every query that scores answers joins it.
        con.execute(f"CREATE TEMP TABLE {LABELS} AS {_LABELS}")
        return con

    def _scan(self, table: str) -> str:
        files = self.files(table)
        if not files:
            return f"SELECT {_EMPTY[table]} WHERE false"
        listed = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
        since = f" WHERE at_ms >= {int(self._since_ms)}" if self._since_ms is not None else ""
        return (
            f"SELECT * FROM read_parquet([{listed}], union_by_name = true, hive_partitioning = false){since}"
        )


def answered_ids(tables: TableArea, deployment: str, ids: Collection[str], since_ms: int) -> set[str]:
    """Which of `ids` the stored log answered from `since_ms` on: the request ids column
    only, newest day first, stopping once every one is found."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    since_day = day_partition(since_ms // DAY_MS)
    files = [p for p in tables.files(PREDICTIONS, [("deployment", deployment)]) if day_of(p) >= since_day]
    wanted = pa.array(sorted(set(ids)), pa.string())
    found: set[str] = set()
    for path in sorted(files, key=day_of, reverse=True):
        try:
            readable = tables.readable([path])[0]  # decrypted only when needed: most calls stop early
            table = pq.read_table(readable, columns=["request_id"], filesystem=tables.readable_fs)
            column = table["request_id"]
        except (OSError, pa.ArrowException) as exc:  # one unreadable file: its ids stay unmatched
            log.warning("cannot read %s to match feedback: %s", path, exc)
            continue
        found.update(pc.unique(column.filter(pc.is_in(column, wanted))).to_pylist())
        if len(found) == len(wanted):
            break
    return found
