"""Pipeline runs and step runs in SQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select, update

from loopline.core.errors import NotFound
from loopline.core.pipelines import OutputRef, PipelineRun, StepRun, StepStatus
from loopline.store.database import Database
from loopline.store.schema import pipeline_runs, step_runs


def _step(row: Any) -> StepRun:
    return StepRun(
        pipeline_run_id=row.pipeline_run_id,
        name=row.name,
        step=row.step,
        status=StepStatus(row.status),
        cache_key=row.cache_key,
        run_id=row.run_id,
        output=OutputRef.from_dict(json.loads(row.output)) if row.output else None,
        attempts=row.attempts,
        started_at=row.started_at,
        ended_at=row.ended_at,
        error=row.error,
    )


def _run(row: Any, steps: list[StepRun]) -> PipelineRun:
    return PipelineRun(
        id=row.id,
        pipeline=row.pipeline,
        status=row.status,
        executor=row.executor,
        params=json.loads(row.params),
        started_at=row.started_at,
        ended_at=row.ended_at,
        resumed_from=row.resumed_from,
        steps=steps,
    )


def _step_values(step: StepRun) -> dict[str, Any]:
    return {
        "status": step.status.value,
        "run_id": step.run_id,
        "output": json.dumps(step.output.to_dict(), sort_keys=True) if step.output else None,
        "attempts": step.attempts,
        "ended_at": step.ended_at,
        "error": step.error,
    }


class SqlPipelineStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def start_run(self, run: PipelineRun) -> None:
        values = {
            "id": run.id,
            "pipeline": run.pipeline,
            "status": run.status,
            "executor": run.executor,
            "params": json.dumps(run.params, sort_keys=True, default=str),
            "started_at": run.started_at,
            "resumed_from": run.resumed_from,
        }
        self._db.write(lambda conn: conn.execute(pipeline_runs.insert().values(**values)))

    def end_run(self, run_id: str, status: str, ended_at: int) -> None:
        stmt = update(pipeline_runs).where(pipeline_runs.c.id == run_id)
        stmt = stmt.values(status=status, ended_at=ended_at)
        self._db.write(lambda conn: conn.execute(stmt))

    def begin_step(self, step: StepRun) -> None:
        values = {
            "pipeline_run_id": step.pipeline_run_id,
            "name": step.name,
            "step": step.step,
            "cache_key": step.cache_key,
            "started_at": step.started_at,
            **_step_values(step),
        }
        self._db.write(lambda conn: conn.execute(step_runs.insert().values(**values)))

    def finish_step(self, step: StepRun) -> None:
        stmt = (
            update(step_runs)
            .where(step_runs.c.pipeline_run_id == step.pipeline_run_id, step_runs.c.name == step.name)
            .values(**_step_values(step))
        )
        self._db.write(lambda conn: conn.execute(stmt))

    def cached(self, cache_key: str) -> StepRun | None:
        """The newest finished step run with this cache key, if any."""
        stmt = (
            select(step_runs)
            .where(step_runs.c.cache_key == cache_key, step_runs.c.status == StepStatus.FINISHED.value)
            .order_by(step_runs.c.ended_at.desc(), step_runs.c.id.desc())
            .limit(1)
        )
        row = self._db.read(lambda conn: conn.execute(stmt).one_or_none())
        return None if row is None else _step(row)

    def get_run(self, run_id: str) -> PipelineRun:
        def work(conn: Connection) -> PipelineRun:
            row = conn.execute(select(pipeline_runs).where(pipeline_runs.c.id == run_id)).one_or_none()
            if row is None:
                raise NotFound(f"pipeline run {run_id!r} does not exist (see `loopline pipelines list`)")
            steps = conn.execute(
                select(step_runs).where(step_runs.c.pipeline_run_id == run_id).order_by(step_runs.c.id)
            )
            return _run(row, [_step(s) for s in steps])

        return self._db.read(work)

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[PipelineRun]:
        """The newest runs first, without their steps."""
        stmt = select(pipeline_runs).order_by(pipeline_runs.c.started_at.desc()).limit(limit)
        if pipeline is not None:
            stmt = stmt.where(pipeline_runs.c.pipeline == pipeline)
        return self._db.read(lambda conn: [_run(r, []) for r in conn.execute(stmt)])
