"""Content hashes of tables: the version key of a dataset and its node in the lineage graph.

The hash covers column names, types and every value in row order, and does not depend on
how the rows were cut into batches: each column feeds its own hashers (validity, values,
and for text the lengths), which only ever see one continuous stream. So a frame, the same
rows read from a CSV in chunks, and the Parquet file they were stored as, hash alike.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopline.core.errors import InvalidInput


def canonical_type(data_type: pa.DataType) -> pa.DataType:
    """The type a column is hashed and stored as: no dictionary encoding, no large variants,
    and decimals (SQL NUMERIC) as doubles, which is what learning code can use."""
    if pa.types.is_decimal(data_type):
        return pa.float64()
    if pa.types.is_dictionary(data_type):
        return canonical_type(data_type.value_type)
    if pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type):
        return pa.string()
    if pa.types.is_large_binary(data_type) or pa.types.is_binary_view(data_type):
        return pa.binary()
    return data_type


def canonical_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, canonical_type(f.type)) for f in schema])


class _ColumnHasher:
    def __init__(self) -> None:
        self.validity = hashlib.sha256()
        self.lengths = hashlib.sha256()
        self.values = hashlib.sha256()

    def update(self, column: pa.Array) -> None:
        if column.null_count:
            self.validity.update(column.is_valid().to_numpy(zero_copy_only=False).view(np.uint8).tobytes())
        else:
            self.validity.update(b"\x01" * len(column))
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_binary(kind):
            self._update_bytes(column.cast(pa.large_binary()))
        elif pa.types.is_boolean(kind):
            self.values.update(pc.fill_null(column, False).to_numpy(zero_copy_only=False).view(np.uint8))
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
            self.values.update(pc.fill_null(column, 0).to_numpy(zero_copy_only=False).tobytes())
        elif pa.types.is_temporal(kind):
            width = pa.int32() if kind.bit_width == 32 else pa.int64()
            self.values.update(pc.fill_null(column.view(width), 0).to_numpy(zero_copy_only=False).tobytes())
        else:  # decimals, lists, structs: rare enough to go through Python, one value per line
            self.values.update(
                "".join(
                    json.dumps(v, default=str, sort_keys=True) + "\n" for v in column.to_pylist()
                ).encode()
            )

    def _update_bytes(self, column: pa.Array) -> None:
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[
            column.offset : column.offset + len(column) + 1
        ]
        self.lengths.update(np.diff(offsets).tobytes())
        data = column.buffers()[2]
        if data is not None and offsets[-1] > offsets[0]:
            self.values.update(memoryview(data)[offsets[0] : offsets[-1]])

    def digest(self) -> bytes:
        return self.validity.digest() + self.lengths.digest() + self.values.digest()


class TableHasher:
    """Feed record batches of one schema in order; `hexdigest` names the whole table."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = canonical_schema(schema)
        self.rows = 0
        self._columns = [_ColumnHasher() for _ in self.schema]

    def update(self, batch: pa.RecordBatch) -> None:
        for hasher, column, field in zip(self._columns, batch.columns, self.schema, strict=True):
            hasher.update(column.cast(field.type) if column.type != field.type else column)
        self.rows += batch.num_rows

    def hexdigest(self) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps([[f.name, str(f.type)] for f in self.schema]).encode())
        digest.update(str(self.rows).encode())
        for hasher in self._columns:
            digest.update(hasher.digest())
        return digest.hexdigest()


def frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A frame as an Arrow table (the index is not data), with the offending column named."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"the frame cannot be stored as a table: {exc}") from None


def table_digest(data: pd.DataFrame | pa.Table) -> str:
    table = frame_to_arrow(data) if isinstance(data, pd.DataFrame) else data
    hasher = TableHasher(table.schema)
    for batch in table.to_batches():
        hasher.update(batch)
    return hasher.hexdigest()


def describe_type(data_type: Any) -> str:
    return str(canonical_type(data_type)) if isinstance(data_type, pa.DataType) else str(data_type)
