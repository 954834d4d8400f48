"""`column IN (keys)` as a single bound parameter.

A plain IN list binds one parameter per key: compiling and sending it costs more than the
query for a page of a thousand runs, every count is new statement text for the driver's
prepared statements, and long lists must be split below the backend's parameter limit.
One array (PostgreSQL) or one JSON list (SQLite) keeps the statement text fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import ARRAY, BigInteger, ColumnElement, Connection, any_, bindparam, func, select


def among(conn: Connection, column: ColumnElement[Any], keys: Sequence[int]) -> ColumnElement[bool]:
    """`column` is one of the integer `keys`."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(keys), type_=ARRAY(BigInteger)))
    listed = func.json_each(orjson.dumps(list(keys)).decode()).table_valued("value")
    return column.in_(select(listed.c.value))
