"""Compiles the search language (`core.search`) into one parameterised SELECT over runs.

Comparisons joined by a top-level AND become inner joins on the (run, key) tables, so the
database can drive the query from whichever index is most selective (for instance the
(key, value) index of latest metrics). Comparisons under OR become EXISTS subqueries.
Pages are keyset-paginated: the token carries the sort values of the last row returned.
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    Table,
    and_,
    exists,
    false,
    or_,
    select,
)

from loopline.core.errors import InvalidInput
from loopline.core.search import And, Comparison, Expr, Field, Or, OrderKey
from loopline.store.keys import plain_rows
from loopline.store.schema import latest_metrics, params, runs, tags

MAX_RESULTS_LIMIT = 10_000
_TABLES: dict[str, Table] = {"metric": latest_metrics, "param": params, "tag": tags}
_NOT_NULL_ATTRIBUTES = frozenset({"run_id", "run_name", "status", "start_time", "created_by"})
_DEFAULT_ORDER = (OrderKey(Field("attribute", "start_time"), descending=True),)


_parent = runs.alias("parent")
_PARENT_ID = select(_parent.c.id).where(_parent.c.pk == runs.c.parent_pk).scalar_subquery()


@lru_cache(maxsize=256)  # a filter names a handful of keys; bounded all the same
def _joined_table(entity: str, position: int) -> FromClause:
    """The `position`-th joined key/value table of a search. Shared between searches: an alias
    builds its column collection on first use, which cost more than the rest of the statement."""
    return _TABLES[entity].alias(f"{entity}_{position}")


def _attribute_column(key: str) -> ColumnElement[Any]:
    if key == "parent_run_id":
        return _PARENT_ID
    column = {"run_id": runs.c.id, "run_name": runs.c.name}.get(key)
    return column if column is not None else runs.c[key]


_OPERATORS: dict[str, Callable[[ColumnElement[Any], Any], ColumnElement[bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "like": lambda column, value: column.like(value),
    "not like": lambda column, value: column.not_like(value),
    "ilike": lambda column, value: column.ilike(value),
    "not ilike": lambda column, value: column.not_ilike(value),
    "in": lambda column, value: column.in_(value),
    "not in": lambda column, value: column.not_in(value),
}


def _compare(column: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    return _OPERATORS[op](column, value)


def _match(entity: str, column: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    """A param, tag or metric value against `value`. A metric's NaN (stored as NULL) equals
    no number, as in IEEE arithmetic: `!=` matches it, every other comparison does not."""
    compared = _compare(column, op, value)
    if entity == "metric" and op == "!=":
        return or_(compared, column.is_(None))
    return compared


class _Query:
    """The pieces of one search: joined key/value tables, conditions, sort expressions."""

    def __init__(self, source: FromClause) -> None:
        self.source = source
        self.joined: dict[tuple[str, str], FromClause] = {}

    def join(self, field: Field, outer: bool) -> ColumnElement[Any]:
        """The value column of `field`, joining its table once per (entity, key)."""
        ident = (field.entity, field.key)
        table = self.joined.get(ident)
        if table is None:
            table = _joined_table(field.entity, len(self.joined))
            on = and_(table.c.run_pk == runs.c.pk, table.c.key == field.key)
            self.source = (self.source.outerjoin if outer else self.source.join)(table, on)
            self.joined[ident] = table
        return table.c.value

    def top_level(self, expr: Expr) -> list[ColumnElement[bool]]:
        items = expr.items if isinstance(expr, And) else (expr,)
        conditions = []
        for item in items:
            if isinstance(item, Comparison) and item.field.entity != "attribute":
                if (item.field.entity, item.field.key) in self.joined:
                    conditions.append(self.nested(item))  # a second test of the same key
                else:
                    column = self.join(item.field, outer=False)
                    conditions.append(_match(item.field.entity, column, item.op, item.value))
            else:
                conditions.append(self.nested(item))
        return conditions

    def nested(self, expr: Expr) -> ColumnElement[bool]:
        if isinstance(expr, And):
            return and_(*(self.nested(item) for item in expr.items))
        if isinstance(expr, Or):
            return or_(*(self.nested(item) for item in expr.items))
        field = expr.field
        if field.entity == "attribute":
            return _compare(_attribute_column(field.key), expr.op, expr.value)
        table = _TABLES[field.entity]
        return exists().where(
            table.c.run_pk == runs.c.pk,
            table.c.key == field.key,
            _match(field.entity, table.c.value, expr.op, expr.value),
        )

    def sort_column(self, field: Field) -> ColumnElement[Any]:
        if field.entity == "attribute":
            return _attribute_column(field.key)
        return self.join(field, outer=True)


def search_run_rows(
    conn: Connection,
    experiment_ids: Sequence[int],
    filter_expr: Expr | None,
    order_by: Sequence[OrderKey],
    max_results: int,
    page_token: str | None,
    include_deleted: bool,
    columns: Sequence[ColumnElement[Any]],
    source: FromClause = runs,
) -> tuple[list[tuple[Any, ...]], str | None]:
    """One page of matching runs, in order, as the driver's tuples of `columns` (the first is
    `runs.c.pk`; `source` joins onto `runs`), and the next page's token. The page's rows come
    with the search itself: no second statement fetches them by key."""
    assert columns[0] is runs.c.pk
    if not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidInput(f"max_results must be between 1 and {MAX_RESULTS_LIMIT}, got {max_results}")
    order_by = tuple(order_by) or _DEFAULT_ORDER
    fingerprint = _fingerprint(experiment_ids, filter_expr, order_by, include_deleted)

    query = _Query(source)
    conditions: list[ColumnElement[bool]] = [runs.c.experiment_id.in_(list(experiment_ids))]
    if not include_deleted:
        conditions.append(runs.c.deleted_at.is_(None))
    if filter_expr is not None:
        conditions.extend(query.top_level(filter_expr))
    sort = [(query.sort_column(key.field), key.descending) for key in order_by]
    if page_token is not None:
        last_values, last_pk = _decode_token(page_token, fingerprint, len(sort))
        conditions.append(_after(sort, last_values, last_pk))

    sort_columns = [column.label(f"sort_{i}") for i, (column, _) in enumerate(sort)]
    ordering = [
        _ordering(col, desc, _may_be_null(key.field)) for (col, desc), key in zip(sort, order_by, strict=True)
    ]
    stmt: Select[Any] = (
        select(*columns, *sort_columns)
        .select_from(query.source)
        .where(*conditions)
        .order_by(*ordering, runs.c.pk)
        .limit(max_results + 1)
    )
    rows = plain_rows(conn.execute(stmt))
    if len(rows) <= max_results:
        return rows, None
    last = rows[max_results - 1]
    return rows[:max_results], _encode_token(fingerprint, list(last[len(columns) :]), last[0])


def _may_be_null(field: Field) -> bool:
    """Values of metrics, params and tags come from outer joins: a run may lack the key."""
    return field.entity != "attribute" or field.key not in _NOT_NULL_ATTRIBUTES


def _ordering(column: ColumnElement[Any], descending: bool, nullable: bool) -> ColumnElement[Any]:
    """NULLs last; said only where a NULL can occur, since PostgreSQL then cannot use
    a plain index for the order (as for the newest-first default on start_time)."""
    clause = column.desc() if descending else column.asc()
    return clause.nulls_last() if nullable else clause


def _after(
    sort: Sequence[tuple[ColumnElement[Any], bool]], values: Sequence[Any], last_pk: int
) -> ColumnElement[bool]:
    """Rows that sort after the row with `values` and `last_pk` (NULLs sort last)."""
    alternatives: list[ColumnElement[bool]] = []
    equal_so_far: list[ColumnElement[bool]] = []
    for (column, descending), value in zip(sort, values, strict=True):
        if value is None:
            equal_so_far.append(column.is_(None))  # nothing sorts after NULL but other NULLs
            continue
        beyond = column < value if descending else column > value
        alternatives.append(and_(*equal_so_far, or_(beyond, column.is_(None))))
        equal_so_far.append(column == value)
    alternatives.append(and_(*equal_so_far, runs.c.pk > last_pk))
    return or_(false(), *alternatives)


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _encode_token(fingerprint: str, values: list[Any], pk: int) -> str:
    payload = json.dumps({"q": fingerprint, "v": values, "k": pk}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_token(token: str, fingerprint: str, width: int) -> tuple[list[Any], int]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        values, pk, query_id = payload["v"], payload["k"], payload["q"]
        valid = isinstance(values, list) and len(values) == width and isinstance(pk, int)
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise InvalidInput(f"page token {token[:40]!r} is malformed; pass the token a search returned")
    if query_id != fingerprint:
        raise InvalidInput("page token belongs to a different search; repeat the same filter and order")
    return values, pk
