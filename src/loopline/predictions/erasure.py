"""Removing one entity's rows from the prediction log: the predictions whose `input.COLUMN`
or `entity.COLUMN` equals the value, and the feedback labels and refusals of those requests.

Each file that held such rows is written again without them (the new file appears whole,
then the old one goes; a file left empty is removed), through the table area only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from loopline.artifacts.tables import TableArea
from loopline.core.privacy import LogErasure
from loopline.predictions.log import ENTITY_PREFIX, ERRORS, FEEDBACK, INPUT_PREFIX, PREDICTIONS


def matching(values: pa.ChunkedArray | pa.Array, value: str) -> pa.ChunkedArray | pa.Array | None:
    """Which of `values` equal `value`, given as text: a text column matches it exactly, a
    number column when it reads as that number. None when the column cannot hold it (a
    boolean, a date, nested values, text that is no number for a number column)."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = pc.cast(values, kind.value_type), kind.value_type
    target: pa.Scalar | None = None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        target = pa.scalar(value, kind)
    elif pa.types.is_integer(kind):
        number = _number(value)
        if number is not None and number == number.to_integral_value():
            try:
                target = pa.scalar(int(number), kind)
            except (pa.ArrowInvalid, OverflowError):  # out of the column's range: no row holds it
                return None
    elif pa.types.is_floating(kind):
        number = _number(value)
        target = None if number is None else pa.scalar(float(number), kind)
    if target is None:
        return None
    return pc.fill_null(pc.equal(values, target), False)


def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() and not math.isinf(float(number)) else None


def is_number(value: str) -> bool:
    """Whether `value` reads as a finite number."""
    return _number(value) is not None


@dataclass
class _Tally:
    predictions: int = 0
    feedback: int = 0
    errors: int = 0
    rewritten: int = 0
    removed: int = 0


def deployment_of(path: str) -> str:
    """The deployment whose log a file belongs to, from its `deployment=` folder."""
    for part in path.split("/"):
        if part.startswith("deployment="):
            return part.removeprefix("deployment=")
    return ""


class LogEraser:
    """Finds (and unless `dry_run`, removes) an entity's rows in the prediction log."""

    def __init__(self, area: TableArea, column: str, value: str, *, dry_run: bool) -> None:
        self._area = area
        self._columns = (f"{INPUT_PREFIX}{column}", f"{ENTITY_PREFIX}{column}")
        self._value = value
        self._dry_run = dry_run
        self._tallies: dict[str, _Tally] = defaultdict(_Tally)
        self._requests: dict[str, set[str]] = defaultdict(set)  # deployment -> request ids
        self._rows: dict[str, set[tuple[str, int]]] = defaultdict(set)  # (request id, row)

    def run(self) -> list[LogErasure]:
        """Predictions first, as they name the requests whose feedback and errors go too."""
        for path in self._area.files(PREDICTIONS):
            self._predictions(path)
        for path in self._area.files(FEEDBACK):
            self._feedback(path)
        for path in self._area.files(ERRORS):
            self._errors(path)
        return [
            LogErasure(name, t.predictions, t.feedback, t.errors, t.rewritten, t.removed)
            for name, t in sorted(self._tallies.items())
        ]

    def _predictions(self, path: str) -> None:
        data = self._area.read_file(path)
        mask = None
        for name in self._columns:
            if name in data.column_names:
                found = matching(data[name], self._value)
                if found is not None:
                    mask = found if mask is None else pc.or_(mask, found)
        if mask is None or not pc.any(mask).as_py():
            return
        deployment = deployment_of(path)
        hit = data.filter(mask)
        ids = hit["request_id"].to_pylist()
        self._requests[deployment].update(ids)
        rows = hit["row"].to_pylist() if "row" in hit.column_names else [0] * len(ids)
        self._rows[deployment].update(zip(ids, rows, strict=True))
        self._tallies[deployment].predictions += hit.num_rows
        self._drop(path, data, mask, deployment)

    def _feedback(self, path: str) -> None:
        deployment = deployment_of(path)
        ids = self._requests.get(deployment)
        if not ids:
            return
        data = self._area.read_file(path)
        mask = pc.fill_null(pc.is_in(data["request_id"], value_set=pa.array(sorted(ids), pa.string())), False)
        if "row" in data.column_names and pc.any(mask).as_py():  # a label names its row, when given
            wanted = self._rows[deployment]
            pairs = zip(
                data["request_id"].to_pylist(), data["row"].to_pylist(), mask.to_pylist(), strict=True
            )
            mask = pa.array([hit and (row is None or (rid, row) in wanted) for rid, row, hit in pairs])
        if pc.any(mask).as_py():
            self._tallies[deployment].feedback += pc.sum(mask).as_py()
            self._drop(path, data, mask, deployment)

    def _errors(self, path: str) -> None:
        """Refusals of the requests, and those whose message quotes the value (a refused
        request logged no prediction to find it by); a number is not looked for in text."""
        deployment = deployment_of(path)
        data = self._area.read_file(path)
        ids = self._requests.get(deployment, set())
        mask = pc.fill_null(pc.is_in(data["request_id"], value_set=pa.array(sorted(ids), pa.string())), False)
        if "error" in data.column_names and not is_number(self._value):
            quoted = pc.fill_null(pc.match_substring(data["error"].cast(pa.string()), self._value), False)
            mask = pc.or_(mask, quoted)
        if pc.any(mask).as_py():
            self._tallies[deployment].errors += pc.sum(mask).as_py()
            self._drop(path, data, mask, deployment)

    def _drop(self, path: str, data: pa.Table, mask: pa.ChunkedArray | pa.Array, deployment: str) -> None:
        keep = data.filter(pc.invert(mask))
        tally = self._tallies[deployment]
        if keep.num_rows:
            tally.rewritten += 1
        else:
            tally.removed += 1
        if not self._dry_run:
            self._area.rewrite(path, keep)
