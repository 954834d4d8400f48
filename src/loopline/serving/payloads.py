"""Request bodies: JSON records or columns, CSV, Parquet. Never anything that unpickles.

JSON takes `{"records": [{column: value, ...}, ...]}` or
`{"columns": [...], "data": [[...], ...]}`, and MLflow's `dataframe_split`,
`dataframe_records`, `instances` and `inputs`. The fast path turns either straight into a
float matrix in the model's column order; anything unusual goes through a DataFrame and
the signature check, which says what is wrong and where.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from loopline.serving.http import HttpError

JSON = "application/json"
CSV = "text/csv"
PARQUET = ("application/vnd.apache.parquet", "application/x-parquet", "application/parquet")


@dataclass
class Payload:
    records: list[dict[str, Any]] | None = None
    columns: list[str] | None = None
    data: list[list[Any]] | None = None
    frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        if self.records is not None:
            return len(self.records)
        if self.data is not None:
            return len(self.data)
        assert self.frame is not None
        return len(self.frame)

    @property
    def width(self) -> int:
        """How many columns its widest row has."""
        if self.records is not None:
            return max(map(len, self.records), default=0)
        if self.columns is not None:
            return len(self.columns)
        assert self.frame is not None
        return int(self.frame.shape[1])

    def first_value(self, field: str) -> Any:
        """The field's value in the first row (A/B keys), or None."""
        if self.records is not None:
            return self.records[0].get(field)
        if self.columns is not None and self.data is not None:
            return self.data[0][self.columns.index(field)] if field in self.columns else None
        assert self.frame is not None
        return self.frame[field].iloc[0] if field in self.frame.columns else None

    def fields(self) -> list[str]:
        """The fields of all rows, in the order first seen."""
        if self.records is not None:
            return list(dict.fromkeys(k for r in self.records for k in r))
        if self.columns is not None:
            return list(self.columns)
        assert self.frame is not None
        return [str(name) for name in self.frame.columns]

    def rows_without(self, field: str) -> list[int]:
        """The rows that do not give `field` (every row, when it is not a column)."""
        if self.records is not None:
            return [i for i, r in enumerate(self.records) if field not in r]
        return [] if field in self.fields() else list(range(len(self)))

    def column(self, field: str) -> list[Any]:
        """The field's value in every row (None in a record that lacks it)."""
        if self.records is not None:
            return [r.get(field) for r in self.records]
        if self.columns is not None and self.data is not None:
            at = self.columns.index(field)
            return [r[at] for r in self.data]
        assert self.frame is not None
        return list(self.frame[field].tolist())

    def with_columns(self, values: dict[str, list[Any]]) -> Payload:
        """The rows with each column of `values` added where a row does not give it: what a
        row gives wins."""
        if not values:
            return self
        if self.records is not None:
            names = list(values)
            return Payload(
                records=[
                    {**record, **{n: values[n][i] for n in names if n not in record}}
                    for i, record in enumerate(self.records)
                ]
            )
        added = [n for n in values if n not in self.fields()]
        if self.columns is not None and self.data is not None:
            return Payload(
                columns=[*self.columns, *added],
                data=[[*row, *(values[n][i] for n in added)] for i, row in enumerate(self.data)],
            )
        assert self.frame is not None
        return Payload(frame=self.frame.assign(**{n: values[n] for n in added}))

    def without(self, *fields: str) -> Payload:
        """The rows without `fields`."""
        if self.records is not None:
            return Payload(records=[{k: v for k, v in r.items() if k not in fields} for r in self.records])
        if self.columns is not None and self.data is not None:
            keep = [i for i, name in enumerate(self.columns) if name not in fields]
            if len(keep) == len(self.columns):
                return self
            return Payload(
                columns=[self.columns[i] for i in keep], data=[[r[i] for i in keep] for r in self.data]
            )
        assert self.frame is not None
        return Payload(frame=self.frame.drop(columns=list(fields), errors="ignore"))

    def matrix(self, columns: list[str]) -> np.ndarray | None:
        """The rows as a float matrix in `columns` order, or None if they do not fit one."""
        try:
            if self.records is not None:
                if any(len(r) != len(columns) for r in self.records):
                    return None
                rows = [[r[c] for c in columns] for r in self.records]
                return np.array(rows, dtype=np.float64) if _all_numbers(rows) else None
            if self.columns is not None and self.data is not None:
                if sorted(self.columns) != sorted(columns) or not _all_numbers(self.data):
                    return None
                values = np.array(self.data, dtype=np.float64)
                if values.ndim != 2 or values.shape[1] != len(columns):
                    return None
                return (
                    values if self.columns == columns else values[:, [self.columns.index(c) for c in columns]]
                )
            assert self.frame is not None
            if sorted(map(str, self.frame.columns)) != sorted(columns):
                return None
            return self.frame[columns].to_numpy(dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            return None

    def to_frame(self) -> pd.DataFrame:
        if self.records is not None:
            return pd.DataFrame.from_records(self.records)
        if self.columns is not None and self.data is not None:
            return pd.DataFrame(self.data, columns=self.columns)
        assert self.frame is not None
        return self.frame


def _all_numbers(rows: list[list[Any]]) -> bool:
    """Only JSON numbers go to the float path: numpy would also take "1.5" or true, which
    the signature check refuses with a reason."""
    return all(type(value) is float or type(value) is int for row in rows for value in row)


@dataclass(frozen=True)
class Limits:
    """What one request may carry once decoded: a compressed body (Parquet) or a short one
    (CSV, JSON) can still hold more rows or columns than a server should take on."""

    max_rows: int = 100_000
    max_columns: int = 2_000
    max_decoded_bytes: int = 256 * 1024 * 1024


def _media_type(content_type: str | None) -> str:
    """The media type without parameters; a body without one is read as JSON."""
    return (content_type or JSON).split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """Whether the body is (to be read as) JSON: cheap enough to parse on the event loop."""
    return _media_type(content_type) == JSON


def parse(content_type: str | None, body: bytes, limits: Limits = Limits()) -> Payload:
    """The rows of a request body; 4xx for what does not parse or is over `limits`, which are
    checked before anything is decoded (a Parquet file's footer, a CSV's first line)."""
    kind = _media_type(content_type)
    if kind == JSON:
        payload = _json(body)
    elif kind == CSV:
        payload = _csv(body, limits)
    elif kind in PARQUET:
        payload = _parquet(body, limits)
    else:
        raise HttpError(415, f"content type {kind!r} is not accepted; send {JSON}, {CSV} or {PARQUET[0]}")
    if len(payload) == 0:
        raise HttpError(422, "the request has no rows to predict")
    _check_size(len(payload), payload.width, limits)
    names = payload.columns if payload.frame is None else [str(c) for c in payload.frame.columns]
    if names is not None and len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})[:10]
        raise HttpError(422, f"columns appear more than once: {twice}")
    return payload


def _check_size(rows: int, columns: int, limits: Limits) -> None:
    if rows > limits.max_rows:
        raise HttpError(413, f"the request holds {rows:,} rows; the server takes at most {limits.max_rows:,}")
    if columns > limits.max_columns:
        raise HttpError(
            413, f"the request holds {columns:,} columns; the server takes at most {limits.max_columns:,}"
        )


def _csv(body: bytes, limits: Limits) -> Payload:
    header = body.split(b"\n", 1)[0]
    _check_size(body.count(b"\n"), header.count(b",") + 1, limits)  # an upper bound of each
    try:
        return Payload(frame=pd.read_csv(io.BytesIO(body)))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"the CSV body does not parse: {' '.join(str(exc).split())[:200]}") from None


def _parquet(body: bytes, limits: Limits) -> Payload:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(io.BytesIO(body))
        metadata = file.metadata
        _check_size(metadata.num_rows, metadata.num_columns, limits)
        decoded = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        if decoded > limits.max_decoded_bytes:
            limit = limits.max_decoded_bytes
            raise HttpError(413, f"the Parquet body decodes to {decoded:,} bytes; the limit is {limit:,}")
        return Payload(frame=file.read().to_pandas())
    except (pa.ArrowException, OSError) as exc:
        raise HttpError(400, f"the Parquet body does not parse: {str(exc)[:200]}") from None


def _from_mlflow(document: dict[str, Any]) -> dict[str, Any]:
    """MLflow's scoring bodies in this module's forms: `dataframe_records` and `instances` or
    `inputs` as a list of objects are records; `dataframe_split`, and `instances` or `inputs`
    as an object of columns, are columns and data. Other documents pass unchanged."""
    if "dataframe_records" in document:
        return {"records": document["dataframe_records"]}
    if isinstance(split := document.get("dataframe_split"), dict):
        return {"columns": split.get("columns"), "data": split.get("data")}
    rows = document.get("instances", document.get("inputs"))
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        return {"records": rows}
    if isinstance(rows, dict) and all(isinstance(v, list) for v in rows.values()):
        columns = [str(c) for c in rows]
        lengths = {len(v) for v in rows.values()}
        if len(lengths) != 1:
            raise HttpError(422, "'inputs' columns must all hold the same number of values")
        return {"columns": columns, "data": [list(r) for r in zip(*rows.values(), strict=True)]}
    if rows is not None:
        raise HttpError(422, "'instances'/'inputs' must be rows as objects, or an object of columns")
    return document


def _json(body: bytes) -> Payload:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise HttpError(422, 'send {"records": [...]} or {"columns": [...], "data": [[...]]}')
    document = _from_mlflow(document)
    if "records" in document:
        records = document["records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise HttpError(422, "'records' must be a list of objects, one per row")
        return Payload(records=records)
    if "columns" in document and "data" in document:
        columns, data = document["columns"], document["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise HttpError(422, "'columns' must be a list of column names")
        if not isinstance(data, list) or not all(
            isinstance(r, list) and len(r) == len(columns) for r in data
        ):
            raise HttpError(422, f"'data' must be a list of rows of {len(columns)} values each")
        return Payload(columns=columns, data=data)
    raise HttpError(422, 'send {"records": [...]} or {"columns": [...], "data": [[...]]}')
