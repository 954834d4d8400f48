"""Masking and keyed hashing of whole Arrow columns (see `core.personal_data` for the rules):
a masked text column keeps its nulls and says `***` elsewhere, any other masked column is
all null; a hashed column is text, each value's HMAC-SHA256 pseudonym, nulls kept."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopline.core.errors import InvalidInput
from loopline.core.personal_data import HASH_KEY_HINT, MASK, keyed_hash

Column = Any  # a pyarrow Array or ChunkedArray


def _is_text(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        return _is_text(data_type.value_type)
    return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))


def mask_column(column: Column) -> Column:
    """`column` with nothing of its values left: text becomes `***`, anything else null."""
    if _is_text(column.type):
        plain = column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column
        return pc.if_else(pc.is_null(plain), pa.scalar(None, pa.string()), pa.scalar(MASK, pa.string()))
    return pa.nulls(len(column), column.type)


def hash_column(column: Column, key: bytes | None, name: str) -> pa.Array:
    """Each value of `column` as its pseudonym under `key` (text; nulls stay null)."""
    if key is None:
        raise InvalidInput(f"column {name!r} is to be hashed and no hash key is configured: {HASH_KEY_HINT}")
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pa.array([None if v is None else keyed_hash(key, v) for v in column.to_pylist()], pa.string())


def redact_table(table: pa.Table, treatments: dict[str, str], key: bytes | None) -> pa.Table:
    """`table` with each column named in `treatments` dropped, masked or hashed (its value
    there); columns it does not hold are left alone."""
    for name in [n for n in table.column_names if n in treatments]:
        index = table.column_names.index(name)
        if treatments[name] == "drop":
            table = table.remove_column(index)
        elif treatments[name] == "mask":
            masked = mask_column(table.column(index))
            table = table.set_column(index, pa.field(name, masked.type), masked)
        else:
            hashed = hash_column(table.column(index), key, name)
            table = table.set_column(index, pa.field(name, pa.string()), hashed)
    return table
