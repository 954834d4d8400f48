"""Projects and experiments in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from loopline.core.clock import now_ms
from loopline.core.entities import Experiment, ExperimentActivity, Project
from loopline.core.errors import AlreadyExists, NotFound
from loopline.store.database import Database
from loopline.store.schema import experiments, projects, runs


def _project(row: Any) -> Project:
    return Project(id=row.id, name=row.name, description=row.description, created_at=row.created_at)


def _experiment(row: Any) -> Experiment:
    return Experiment(
        id=row.id,
        project=row.project,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
    )


_EXPERIMENT_COLUMNS = select(
    experiments.c.id,
    projects.c.name.label("project"),
    experiments.c.name,
    experiments.c.description,
    experiments.c.created_at,
    experiments.c.created_by,
).join_from(experiments, projects)


def project_key(db: Database, conn: Connection, name: str) -> int:
    """The key of project `name`, which exists from its first use on."""
    stmt = db.insert(projects).values(name=name, description="", created_at=now_ms())
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    project_id: int = conn.execute(select(projects.c.id).where(projects.c.name == name)).scalar_one()
    return project_id


class SqlExperimentStore:
    """Experiments never change once created, so the ones found are remembered: a search or
    a run start by experiment name then costs no lookup."""

    def __init__(self, db: Database, limit: int = 10_000) -> None:
        self._db = db
        self._found: dict[int | tuple[str, str], Experiment] = {}
        self._limit = limit

    def _remember(self, experiment: Experiment) -> Experiment:
        if len(self._found) >= self._limit:
            self._found.clear()
        self._found[experiment.id] = self._found[(experiment.project, experiment.name)] = experiment
        return experiment

    def _project_id(self, conn: Connection, name: str) -> int:
        return project_key(self._db, conn, name)

    def list_projects(self) -> list[Project]:
        rows = self._db.read(lambda conn: conn.execute(select(projects).order_by(projects.c.name)).all())
        return [_project(row) for row in rows]

    def create_experiment(self, project: str, name: str, description: str, created_by: str) -> Experiment:
        def work(conn: Connection) -> int:
            values = {
                "project_id": self._project_id(conn, project),
                "name": name,
                "description": description,
                "created_at": now_ms(),
                "created_by": created_by,
            }
            return int(
                conn.execute(experiments.insert().values(values).returning(experiments.c.id)).scalar_one()
            )

        try:
            experiment_id = self._db.write(work)
        except IntegrityError:
            raise AlreadyExists(f"experiment {name!r} already exists in project {project!r}") from None
        return self.get_experiment(experiment_id)

    def get_experiment(self, experiment_id: int) -> Experiment:
        found = self._found.get(experiment_id)
        if found is not None:
            return found
        stmt = _EXPERIMENT_COLUMNS.where(experiments.c.id == experiment_id)
        row = self._db.read(lambda conn: conn.execute(stmt).one_or_none())
        if row is None:
            raise NotFound(f"experiment {experiment_id} does not exist")
        return self._remember(_experiment(row))

    def find_experiment(self, project: str, name: str) -> Experiment | None:
        found = self._found.get((project, name))
        if found is not None:
            return found
        stmt = _EXPERIMENT_COLUMNS.where(projects.c.name == project, experiments.c.name == name)
        row = self._db.read(lambda conn: conn.execute(stmt).one_or_none())
        return None if row is None else self._remember(_experiment(row))

    def list_experiments(self, project: str | None = None) -> list[Experiment]:
        stmt = _EXPERIMENT_COLUMNS.order_by(projects.c.name, experiments.c.name)
        if project is not None:
            stmt = stmt.where(projects.c.name == project)
        return [_experiment(row) for row in self._db.read(lambda conn: conn.execute(stmt).all())]

    def activity(self, experiment_ids: Sequence[int]) -> list[ExperimentActivity]:
        stmt = (
            select(runs.c.experiment_id, func.count(), func.max(runs.c.start_time))
            .where(runs.c.experiment_id.in_(list(experiment_ids)), runs.c.deleted_at.is_(None))
            .group_by(runs.c.experiment_id)
        )
        rows = self._db.read(lambda conn: conn.execute(stmt).all())
        return [ExperimentActivity(experiment_id, count, last) for experiment_id, count, last in rows]
