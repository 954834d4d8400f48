"""The prediction log: every answered row, appended through a bounded in-memory buffer to
Parquet files partitioned by deployment and date; feedback labels go the same way.

A request waits (never drops its rows) when the buffer is full, so memory stays bounded
under any load; the buffer is written every `flush_interval` seconds, when it holds
`flush_rows`, and on shutdown. Each partition is written on its own: one that fails keeps
its rows for the next flush and marks the log failing (`/ready` says so), the others land.
Labels are stored as text (`label_text`), so feedback of mixed JSON types never clashes.

A deployment's log treatments (`LogRedaction`) are applied to its rows as they are turned
into a table, before any byte of them is written: a dropped column is never in a file, a
masked or hashed one only masked or hashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.artifacts.tables import TableArea
from loopline.core.errors import InvalidInput
from loopline.core.personal_data import HASH_KEY_HINT, LogPolicy
from loopline.profiling.redaction import redact_table

PREDICTIONS = "predictions"  # one row per answered row: request_id, row, at_ms, arm, model, version,
# latency_ms, prediction, input.<column> per input, proba.<class> per class of a classifier,
# entity.<key> per join key of a deployment's online features (what they were looked up by)
FEEDBACK = "feedback"  # labels as they arrive: request_id, row, label, at_ms
ERRORS = "errors"  # refused requests: request_id, arm, version, at_ms, status, error
INPUT_PREFIX = "input."
ENTITY_PREFIX = "entity."
PROBA_PREFIX = "proba."


@dataclass(frozen=True)
class LogRedaction:
    """A deployment's log treatments with the key its hashes are made under: each treated
    input column and the entity column of the same name are dropped, masked or hashed."""

    policy: LogPolicy
    key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.policy.hash and self.key is None:
            raise InvalidInput(
                f"the prediction log is to hash {list(self.policy.hash)[:20]} and this server has no "
                f"hash key: {HASH_KEY_HINT}"
            )

    def apply(self, table: pa.Table) -> pa.Table:
        """`table` (logged rows) with the treated columns dropped, masked or hashed."""
        treatments = {}
        for name, treatment in self.policy.columns.items():
            treatments[f"{INPUT_PREFIX}{name}"] = treatment
            treatments[f"{ENTITY_PREFIX}{name}"] = treatment
        return redact_table(table, treatments, self.key)


@dataclass(frozen=True)
class PredictionChunk:
    """The rows of one request, as answered by one arm."""

    request_id: str
    at_ms: int
    deployment: str
    arm: str
    model: str
    version: int
    latency_ms: float
    columns: list[str]
    inputs: Any  # float matrix, or a DataFrame for other signatures
    predictions: np.ndarray
    proba: np.ndarray | None
    classes: list[Any] | None
    entities: dict[str, list[Any]] | None = None  # join key -> its value in each row
    redaction: LogRedaction | None = None  # the deployment's log treatments when it answered

    def __len__(self) -> int:
        return len(self.predictions)


@dataclass(frozen=True)
class RecordChunk:
    """A few rows for a small table of the log: feedback labels, refused requests."""

    table: str
    deployment: str
    at_ms: int
    records: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.records)


DAY_MS = 86_400_000


def label_text(value: Any) -> str:
    """A feedback label as the log stores it: text, numbers spelled one way (1, 1.0: "1"),
    as monitors compare categories. Refuses what is no label: null, lists, objects."""
    if isinstance(value, bool | str | int):
        return str(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return str(int(value)) if value.is_integer() else repr(value)
    raise ValueError("a label is a string, a number or a boolean")


def labels_as(labels: pd.Series, dtype: Any) -> pd.Series:
    """Stored labels (text) as values of `dtype`, the type of the column they label."""
    if pd.api.types.is_bool_dtype(dtype):
        return labels.map({"True": True, "False": False, "true": True, "false": False})
    if pd.api.types.is_numeric_dtype(dtype):
        return pd.to_numeric(labels).astype(dtype)
    return labels.astype(dtype)


def _held(rows: Any) -> int:
    """The rows of one buffered partition: prediction rows, or chunks of records."""
    return len(rows) if isinstance(rows, _PredictionRows) else sum(map(len, rows))


def day_partition(day: int) -> str:
    """The `date=` partition of day number `day` (days since the epoch, UTC)."""
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))


class _PredictionRows:
    """The rows of one file to be (deployment, day, arm, version), kept column by column
    as they arrive, so that a flush is a few concatenations and not a loop over requests:
    the flush runs in a thread but shares the interpreter with the server."""

    def __init__(self, chunk: PredictionChunk) -> None:
        self.columns = chunk.columns
        self.classes = chunk.classes
        self.redaction = chunk.redaction  # shared by every chunk of these rows: it is in their key
        self.arm, self.model, self.version = chunk.arm, chunk.model, chunk.version
        self.request_ids: list[str] = []
        self.rows: list[int] = []
        self.at_ms: list[int] = []
        self.latency_ms: list[float] = []
        self.inputs: list[Any] = []
        self.predictions: list[np.ndarray] = []
        self.proba: list[np.ndarray] = []
        self.entities: dict[str, list[Any]] = {}  # join key -> a value per row (None: not given)

    def _add_entities(self, entities: dict[str, list[Any]] | None, n: int) -> None:
        """Append n rows' join keys; a key some rows lack is None in those rows."""
        before = len(self.request_ids)
        given = entities or {}
        for key in given.keys() - self.entities.keys():
            self.entities[key] = [None] * before
        for key, held in self.entities.items():
            held.extend(given.get(key, [None] * n))

    def merge(self, later: _PredictionRows) -> None:
        """Take in the rows of `later` (buffered after these were taken to be written)."""
        self._add_entities(later.entities, len(later))
        self.request_ids += later.request_ids
        self.rows += later.rows
        self.at_ms += later.at_ms
        self.latency_ms += later.latency_ms
        self.inputs += later.inputs
        self.predictions += later.predictions
        self.proba += later.proba

    def __len__(self) -> int:
        return len(self.request_ids)

    def add(self, chunk: PredictionChunk) -> None:
        n = len(chunk)
        if chunk.entities is not None or self.entities:
            self._add_entities(chunk.entities, n)
        if n == 1:
            self.request_ids.append(chunk.request_id)
            self.rows.append(0)
            self.at_ms.append(chunk.at_ms)
            self.latency_ms.append(chunk.latency_ms)
        else:
            self.request_ids += [chunk.request_id] * n
            self.rows += range(n)
            self.at_ms += [chunk.at_ms] * n
            self.latency_ms += [chunk.latency_ms] * n
        self.inputs.append(chunk.inputs)
        self.predictions.append(chunk.predictions)
        if chunk.proba is not None:
            self.proba.append(chunk.proba)

    def table(self) -> pa.Table:
        n = len(self.request_ids)
        data: dict[str, Any] = {
            "request_id": pa.array(self.request_ids, pa.string()),
            "row": pa.array(self.rows, pa.int32()),
            "at_ms": pa.array(self.at_ms, pa.int64()),
            "arm": pa.array([self.arm] * n, pa.string()),
            "model": pa.array([self.model] * n, pa.string()),
            "version": pa.array(np.full(n, self.version, dtype=np.int32)),
            "latency_ms": pa.array(self.latency_ms, pa.float64()),
            "prediction": pa.array(np.concatenate(self.predictions)),
        }
        if all(isinstance(x, np.ndarray) for x in self.inputs):
            matrix = np.concatenate(self.inputs)
            for i, name in enumerate(self.columns):
                data[f"{INPUT_PREFIX}{name}"] = pa.array(matrix[:, i])
        else:
            frames = [
                x if isinstance(x, pd.DataFrame) else pd.DataFrame(x, columns=self.columns)
                for x in self.inputs
            ]
            joined = pd.concat(frames, ignore_index=True)
            for name in self.columns:
                data[f"{INPUT_PREFIX}{name}"] = pa.array(joined[name].to_numpy())
        if self.classes is not None and len(self.proba) == len(self.inputs):
            proba = np.concatenate(self.proba)
            for i, label in enumerate(self.classes):
                data[f"{PROBA_PREFIX}{label}"] = pa.array(proba[:, i])
        for key, values in self.entities.items():
            try:
                data[f"{ENTITY_PREFIX}{key}"] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types across requests: as text
                data[f"{ENTITY_PREFIX}{key}"] = pa.array([None if v is None else str(v) for v in values])
        table = pa.table(data)
        return table if self.redaction is None else self.redaction.apply(table)


class PredictionLog:
    def __init__(
        self,
        area: TableArea,
        *,
        max_rows: int = 200_000,
        flush_rows: int = 20_000,
        flush_interval: float = 1.0,
    ) -> None:
        self._area = area
        self._max_rows = max_rows
        self._flush_rows = flush_rows
        self._flush_interval = flush_interval
        self._pending: dict[tuple[Any, ...], Any] = {}  # file key -> rows to write
        self._writing: dict[tuple[Any, ...], Any] = {}  # what the flush running now writes
        self._rows = 0
        self._room = asyncio.Event()
        self._room.set()
        self._due = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._lock = asyncio.Lock()  # one flush at a time
        self._searching = asyncio.Lock()  # one search of the stored log at a time
        self.written_rows = 0
        self.errors: list[str] = []
        self.failing = False  # the last flush left rows it could not write

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._run())

    async def append(self, chunk: PredictionChunk | RecordChunk) -> None:
        # full (with this chunk): wait for the writer rather than drop; a chunk larger than
        # the buffer waits for an empty one
        while self._rows and self._rows + len(chunk) > self._max_rows:
            self._room.clear()
            self._due.set()
            await self._room.wait()
        day = chunk.at_ms // DAY_MS
        if isinstance(chunk, PredictionChunk):
            key: tuple[Any, ...] = (
                PREDICTIONS, chunk.deployment, day, chunk.arm, chunk.version, chunk.redaction
            )  # fmt: skip
            rows = self._pending.get(key)
            if rows is None:
                rows = self._pending[key] = _PredictionRows(chunk)
            rows.add(chunk)
        else:
            self._pending.setdefault((chunk.table, chunk.deployment, day), []).append(chunk)
        self._rows += len(chunk)
        if self._rows >= self._flush_rows:
            self._due.set()

    async def answered(self, deployment: str, ids: Collection[str], since_ms: int) -> set[str]:
        """Which of `ids` were answered by `deployment` from `since_ms` on: held here, or
        read from the stored log (in a thread, one search at a time)."""
        from loopline.predictions.reader import answered_ids

        found = self._buffered_ids(deployment, ids)
        rest = set(ids) - found
        if rest:
            async with self._searching:
                found |= await asyncio.to_thread(answered_ids, self._area, deployment, rest, since_ms)
        return found

    def _buffered_ids(self, deployment: str, ids: Collection[str]) -> set[str]:
        wanted, found = set(ids), set[str]()
        for held in (self._pending, self._writing):
            for key, rows in held.items():
                if key[0] == PREDICTIONS and key[1] == deployment:
                    found |= wanted.intersection(rows.request_ids)
        return found

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self._flush_interval)
            self._due.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write what is buffered. Rows count against the buffer until they are written, so
        memory holds `max_rows` (and one request's) at most."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            if pending:
                self._writing = pending
                try:
                    unwritten = await asyncio.to_thread(self._write, pending)
                finally:
                    self._writing = {}
                self.failing = bool(unwritten)
                self._rows -= sum(_held(rows) for key, rows in pending.items() if key not in unwritten)
                for key, rows in unwritten.items():  # kept, ahead of what came in meanwhile
                    later = self._pending.pop(key, None)
                    if later is not None:
                        if isinstance(rows, _PredictionRows):
                            rows.merge(later)
                        else:
                            rows += later
                    self._pending[key] = rows
            self._room.set()

    def _write(self, pending: dict[tuple[Any, ...], Any]) -> dict[tuple[Any, ...], Any]:
        """Write each partition on its own; returns those that failed, rows untouched."""
        unwritten = {}
        for key, rows in pending.items():
            table, deployment, day = key[:3]
            try:
                if table == PREDICTIONS:
                    data = rows.table()
                else:
                    data = pa.Table.from_pylist([record for chunk in rows for record in chunk.records])
                self._area.append(table, [("deployment", deployment), ("date", day_partition(day))], data)
            except Exception as exc:  # keep serving: the rows wait, the error shows on /ready
                unwritten[key] = rows
                self.errors = [*self.errors[-19:], f"{table} of {deployment}: {type(exc).__name__}: {exc}"]
                continue
            self.written_rows += data.num_rows
        return unwritten

    async def close(self) -> None:
        """Write everything buffered. The writer is let finish, never cancelled mid-write:
        a cancelled await would leave its thread writing after the server has exited."""
        self._closing = True
        self._due.set()
        if self._writer is not None:
            await self._writer
        await self.flush()
