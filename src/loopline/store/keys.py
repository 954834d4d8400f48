"""Statements over many keys: `column IN (keys)` as one bound parameter, and plain rows back.

A plain IN list binds one parameter per key: compiling and sending it costs more than the
query for a page of a thousand runs, every count is new statement text for the driver's
prepared statements, and long lists must be split below the backend's parameter limit.
One array (PostgreSQL) or one JSON list (SQLite) keeps the statement text fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    BindParameter,
    ColumnElement,
    Connection,
    CursorResult,
    Text,
    any_,
    bindparam,
    func,
    select,
)


def key_list(conn: Connection, keys: Sequence[int]) -> BindParameter[Any]:
    """`keys` as one parameter. Pass it to several `among` of one statement and the driver
    sends it once."""
    dialect = conn.dialect.name
    return bindparam(None, key_values(dialect, keys), type_=_key_type(dialect))


def key_parameter(dialect: str, name: str) -> BindParameter[Any]:
    """A named key-list parameter, for statements built once; its value is `key_values`."""
    return bindparam(name, type_=_key_type(dialect))


def key_values(dialect: str, keys: Sequence[int]) -> list[int] | str:
    """The value of a key-list parameter: the list on PostgreSQL, its JSON text on SQLite."""
    return list(keys) if dialect == "postgresql" else orjson.dumps(list(keys)).decode()


def _key_type(dialect: str) -> ARRAY[int] | Text:
    return ARRAY(BigInteger) if dialect == "postgresql" else Text()


def among(
    conn: Connection, column: ColumnElement[Any], keys: Sequence[int] | BindParameter[Any]
) -> ColumnElement[bool]:
    """`column` is one of the integer `keys`."""
    listed = keys if isinstance(keys, BindParameter) else key_list(conn, keys)
    return among_listed(conn.dialect.name, column, listed)


def among_listed(dialect: str, column: ColumnElement[Any], listed: BindParameter[Any]) -> ColumnElement[bool]:
    """`column` is one of the keys in the parameter `listed` (`key_list`, `key_parameter`)."""
    if dialect == "postgresql":
        return column == any_(listed)
    return column.in_(select(func.json_each(listed).table_valued("value").c.value))


def plain_rows(result: CursorResult[Any]) -> list[Any]:
    """All rows as the driver's tuples, without a `Row` object each (a microsecond apiece, and
    a page of runs has thousands of key/values). Only for columns the driver returns as
    they are meant: integers, strings and floats; a SQLite boolean would come back as 0 or 1."""
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()
