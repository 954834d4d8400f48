"""Runs, their params and tags in SQL, and loading runs as entities."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Text,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
    update,
)

from loopline.core.datasets import DataValidation
from loopline.core.entities import Run, RunPage, RunStatus, Source
from loopline.core.errors import Conflict, NotFound
from loopline.core.search import Expr, OrderKey
from loopline.store.database import Database
from loopline.store.keys import among, among_listed, key_parameter, key_values, plain_rows
from loopline.store.run_search import search_run_rows
from loopline.store.schema import data_validations, experiments, latest_metrics, params, projects, runs, tags
from loopline.store.statistics import PlannerStatistics


class RunKeys:
    """Run id to integer key. Cached: neither changes once the run is committed (gc forgets
    the runs it purges)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._cache: dict[str, int] = {}
        self._limit = limit

    def resolve(self, conn: Connection, run_id: str) -> int:
        pk = self._cache.get(run_id)
        if pk is None:
            pk = conn.execute(select(runs.c.pk).where(runs.c.id == run_id)).scalar_one_or_none()
            if pk is None:
                raise NotFound(f"run {run_id!r} does not exist")
            self.remember(run_id, pk)
        return pk

    def remember(self, run_id: str, pk: int) -> None:
        if len(self._cache) >= self._limit:
            self._cache.clear()
        self._cache[run_id] = pk

    def forget(self, run_id: str) -> None:
        """Drop a purged run's key: the run no longer exists."""
        self._cache.pop(run_id, None)


_parent = runs.alias()
_RUN_SOURCE = runs.outerjoin(_parent, _parent.c.pk == runs.c.parent_pk)
_RUN_FIELDS = (
    runs.c.pk, runs.c.id, runs.c.experiment_id, runs.c.name, runs.c.status, runs.c.start_time,
    runs.c.end_time, runs.c.created_by, _parent.c.id.label("parent_id"), runs.c.entry_point,
    runs.c.git_commit, runs.c.git_dirty, runs.c.environment, runs.c.error, runs.c.deleted_at,
)  # fmt: skip
_FIELD_COUNT = len(_RUN_FIELDS)
_STATUSES = {status.value: status for status in RunStatus}
_NAN = float("nan")
_NO_TEXT, _NO_NUMBER = cast(null(), Text), cast(null(), Float)
_VALUE_TABLES = ((params, params.c.value, _NO_NUMBER), (tags, tags.c.value, _NO_NUMBER),
                 (latest_metrics, _NO_TEXT, latest_metrics.c.value))  # fmt: skip
# SQLite: a row per param, tag and latest metric of the runs in `run_keys`. Built once: building
# it cost about as much as running it.
_RUN_KEYS = key_parameter("sqlite", "run_keys")
_SQLITE_VALUE_ROWS = union_all(
    *(
        select(literal_column(str(kind)), table.c.run_pk, table.c.key, text, number).where(
            among_listed("sqlite", table.c.run_pk, _RUN_KEYS)
        )
        for kind, (table, text, number) in enumerate(_VALUE_TABLES)
    )
)
# On PostgreSQL a run's params, tags and latest metrics come in its own row, as three JSON
# objects (a float8 is written in its shortest exact form): no second statement. SQLite writes
# reals into JSON with 15 digits, so there they come in a second statement, a row per value.
_INLINE_VALUES = tuple(
    select(cast(func.json_object_agg(table.c.key, table.c.value), Text))
    .where(table.c.run_pk == runs.c.pk)
    .scalar_subquery()
    for table in (params, tags, latest_metrics)
)


Projection = Mapping[str, Collection[str]]
"""The params, tags and metrics a search brings with each run: keys per entity ("param",
"tag", "metric"); an entity not named brings none."""
_ENTITIES = ("param", "tag", "metric")  # in the order of _VALUE_TABLES


def run_columns(conn: Connection, projection: Projection | None = None) -> tuple[ColumnElement[Any], ...]:
    """What a run's row holds: `_RUN_FIELDS`, then its key/values where the backend can."""
    if conn.dialect.name != "postgresql":
        return _RUN_FIELDS
    if projection is None:
        return _RUN_FIELDS + _INLINE_VALUES
    return _RUN_FIELDS + tuple(
        select(cast(func.json_object_agg(table.c.key, table.c.value), Text))
        .where(table.c.run_pk == runs.c.pk, table.c.key.in_(list(projection.get(entity, ()))))
        .scalar_subquery()
        for entity, table in zip(_ENTITIES, (params, tags, latest_metrics), strict=True)
    )


def _sqlite_value_rows(projection: Projection | None) -> Any:
    if projection is None:
        return _SQLITE_VALUE_ROWS
    return union_all(
        *(
            select(literal_column(str(kind)), table.c.run_pk, table.c.key, text, number).where(
                among_listed("sqlite", table.c.run_pk, _RUN_KEYS),
                table.c.key.in_(list(projection.get(entity, ()))),
            )
            for kind, (entity, (table, text, number)) in enumerate(zip(_ENTITIES, _VALUE_TABLES, strict=True))
        )
    )


def load_runs(conn: Connection, pks: Sequence[int]) -> list[Run]:
    """Whole runs (attributes, params, latest metrics, tags) in the order of `pks`."""
    stmt = select(*run_columns(conn)).select_from(_RUN_SOURCE).where(among(conn, runs.c.pk, pks))
    by_key = {row[0]: row for row in plain_rows(conn.execute(stmt))}
    return build_runs(conn, [by_key[pk] for pk in pks if pk in by_key])


def build_runs(
    conn: Connection, rows: Sequence[tuple[Any, ...]], projection: Projection | None = None
) -> list[Run]:
    """Runs from their rows (`run_columns`, then anything else), with the values of `projection`
    (all of them when None).

    A search page builds hundreds of runs from thousands of values, so the rows are the
    driver's tuples unpacked by position, and the repeated parts (status, source) are shared."""
    if conn.dialect.name == "postgresql":
        return [_run(row, *_inline_values(row)) for row in rows]
    values: dict[int, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
        row[0]: ({}, {}, {}) for row in rows
    }
    listed = {"run_keys": key_values("sqlite", list(values))}
    for kind, run_pk, key, text, number in plain_rows(conn.execute(_sqlite_value_rows(projection), listed)):
        if kind < 2:
            values[run_pk][kind][key] = text
        else:  # NULL holds NaN on both backends
            values[run_pk][2][key] = _NAN if number is None else number
    return [_run(row, *values[row[0]]) for row in rows]


def _inline_values(row: tuple[Any, ...]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    params_, tags_, metrics_ = (
        orjson.loads(text) if text else {} for text in row[_FIELD_COUNT : _FIELD_COUNT + 3]
    )
    # JSON writes 1.0 as 1, infinities as "Infinity", and NULL (NaN here) as null
    return params_, tags_, {key: _NAN if value is None else float(value) for key, value in metrics_.items()}


@lru_cache(maxsize=256)
def _source(entry_point: str | None, git_commit: str | None, git_dirty: int | None) -> Source:
    """Frozen, so runs share one. `git_dirty` comes as 0 or 1 from SQLite's plain rows."""
    return Source(entry_point, git_commit, None if git_dirty is None else bool(git_dirty))


def _run(row: Any, params_: dict[str, Any], tags_: dict[str, Any], metrics_: dict[str, Any]) -> Run:
    (_, id_, experiment_id, name, status, start_time, end_time, created_by, parent_id, entry_point,
     git_commit, git_dirty, environment, error, deleted_at, *_rest) = row  # fmt: skip
    return Run(
        id=id_, experiment_id=experiment_id, name=name, status=_STATUSES[status], start_time=start_time,
        end_time=end_time, created_by=created_by, parent_id=parent_id,
        source=_source(entry_point, git_commit, git_dirty), environment=orjson.loads(environment),
        error=error, deleted=deleted_at is not None, params=params_, metrics=metrics_, tags=tags_,
    )  # fmt: skip


class SqlRunStore:
    def __init__(self, db: Database, keys: RunKeys) -> None:
        self._db = db
        self._keys = keys
        self._statistics = PlannerStatistics(db, (runs, params, tags, latest_metrics))

    def project_of_run(self, run_id: str) -> str:
        stmt = (
            select(projects.c.name)
            .join_from(runs, experiments, experiments.c.id == runs.c.experiment_id)
            .join(projects, projects.c.id == experiments.c.project_id)
            .where(runs.c.id == run_id)
        )
        found = self._db.read(lambda conn: conn.execute(stmt).scalar())
        if found is None:
            raise NotFound(f"run {run_id!r} does not exist")
        return str(found)

    def create_run(
        self,
        *,
        run_id: str,
        experiment_id: int,
        name: str,
        created_by: str,
        start_time: int,
        parent_id: str | None,
        source: Source,
        environment: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> Run:
        def work(conn: Connection) -> tuple[int, Run]:
            parent_pk = None if parent_id is None else self._keys.resolve(conn, parent_id)
            values = {
                "id": run_id,
                "experiment_id": experiment_id,
                "name": name,
                "status": RunStatus.RUNNING.value,
                "start_time": start_time,
                "created_by": created_by,
                "parent_pk": parent_pk,
                "entry_point": source.entry_point,
                "git_commit": source.git_commit,
                "git_dirty": source.git_dirty,
                "environment": json.dumps(environment, sort_keys=True, default=str),
            }
            pk = int(conn.execute(runs.insert().values(values).returning(runs.c.pk)).scalar_one())
            self._set_tags(conn, pk, tags)
            return pk, load_runs(conn, [pk])[0]

        pk, run = self._db.write(work)
        self._keys.remember(run_id, pk)
        return run

    def get_run(self, run_id: str) -> Run:
        def work(conn: Connection) -> Run:
            return load_runs(conn, [self._keys.resolve(conn, run_id)])[0]

        return self._db.read(work)

    def end_run(self, run_id: str, status: RunStatus, end_time: int, error: str | None) -> Run:
        def work(conn: Connection) -> Run:
            pk = self._keys.resolve(conn, run_id)
            values = {"status": status.value, "end_time": end_time, "error": error}
            conn.execute(update(runs).where(runs.c.pk == pk).values(values))
            return load_runs(conn, [pk])[0]

        return self._db.write(work)

    def delete_run(self, run_id: str, deleted_at: int) -> None:
        def work(conn: Connection) -> None:
            pk = self._keys.resolve(conn, run_id)
            conn.execute(update(runs).where(runs.c.pk == pk).values(deleted_at=deleted_at))

        self._db.write(work)

    def log_params(self, run_id: str, params_: Mapping[str, str]) -> None:
        """Params are write-once: the same value again is fine, a different one a conflict."""
        if not params_:
            return

        def work(conn: Connection) -> None:
            pk = self._keys.resolve(conn, run_id)
            stmt = select(params.c.key, params.c.value).where(
                params.c.run_pk == pk, params.c.key.in_(list(params_))
            )
            stored: dict[str, str] = {key: value for key, value in conn.execute(stmt)}
            for key, value in stored.items():
                if params_[key] != value:
                    raise Conflict(
                        f"param {key!r} of run {run_id} is already {value!r}; params cannot change, "
                        f"so log {params_[key]!r} under another key or in a new run"
                    )
            new = [{"run_pk": pk, "key": k, "value": v} for k, v in params_.items() if k not in stored]
            if new:
                insert = self._db.insert(params).on_conflict_do_nothing(index_elements=["run_pk", "key"])
                conn.execute(insert, new)

        self._db.write(work)

    def set_tags(self, run_id: str, tags_: Mapping[str, str]) -> None:
        if tags_:
            self._db.write(lambda conn: self._set_tags(conn, self._keys.resolve(conn, run_id), tags_))

    def _set_tags(self, conn: Connection, pk: int, tags_: Mapping[str, str]) -> None:
        if not tags_:
            return
        insert = self._db.insert(tags)
        upsert = insert.on_conflict_do_update(
            index_elements=["run_pk", "key"], set_={"value": insert.excluded.value}
        )
        conn.execute(upsert, [{"run_pk": pk, "key": k, "value": v} for k, v in sorted(tags_.items())])

    def heartbeat(self, run_ids: Sequence[str], at: int) -> None:
        """Note that the processes of these runs (those still RUNNING) were alive at `at`."""
        stmt = (
            update(runs)
            .where(runs.c.id.in_(list(run_ids)), runs.c.status == RunStatus.RUNNING.value)
            .values(heartbeat_at=at)
        )
        if run_ids:
            self._db.write(lambda conn: conn.execute(stmt))

    def end_silent_runs(self, silent_since: int, at: int, error: str) -> list[str]:
        """End as KILLED the RUNNING runs whose last heartbeat came before `silent_since`;
        runs that never sent one are left alone. Returns their ids."""

        def work(conn: Connection) -> list[str]:
            silent = conn.execute(
                select(runs.c.pk, runs.c.id).where(
                    runs.c.status == RunStatus.RUNNING.value, runs.c.heartbeat_at < silent_since
                )
            ).all()
            if silent:
                conn.execute(
                    update(runs)
                    .where(runs.c.pk.in_([r.pk for r in silent]), runs.c.status == RunStatus.RUNNING.value)
                    .values(status=RunStatus.KILLED.value, end_time=at, error=error)
                )
            return [r.id for r in silent]

        return self._db.write(work)

    def add_validation(self, validation: DataValidation) -> DataValidation:
        def work(conn: Connection) -> int:
            insert = data_validations.insert().values(
                run_pk=self._keys.resolve(conn, validation.run_id),
                passed=validation.passed,
                source=validation.source,
                contract_digest=validation.contract_digest,
                report=json.dumps(validation.report, default=str),
                created_at=validation.created_at,
                created_by=validation.created_by,
            )
            return int(conn.execute(insert.returning(data_validations.c.id)).scalar_one())

        return dataclasses.replace(validation, id=self._db.write(work))

    def validations(self, run_id: str) -> list[DataValidation]:
        """The validations recorded on a run, oldest first."""

        def work(conn: Connection) -> list[DataValidation]:
            stmt = (
                select(data_validations)
                .where(data_validations.c.run_pk == self._keys.resolve(conn, run_id))
                .order_by(data_validations.c.id)
            )
            return [
                DataValidation(
                    row.id,
                    run_id,
                    row.passed,
                    row.source,
                    row.contract_digest,
                    json.loads(row.report),
                    row.created_at,
                    row.created_by,
                )
                for row in conn.execute(stmt)
            ]

        return self._db.read(work)

    def search_runs(
        self,
        experiment_ids: Sequence[int],
        filter_expr: Expr | None,
        order_by: Sequence[OrderKey],
        max_results: int,
        page_token: str | None,
        include_deleted: bool = False,
        projection: Projection | None = None,
    ) -> RunPage:
        self._statistics.refresh()

        def work(conn: Connection) -> RunPage:
            rows, token = search_run_rows(
                conn,
                experiment_ids,
                filter_expr,
                order_by,
                max_results,
                page_token,
                include_deleted,
                columns=run_columns(conn, projection),
                source=_RUN_SOURCE,
            )
            return RunPage(build_runs(conn, rows, projection), token)

        return self._db.read(work)
