"""Domain entities: plain immutable values, free of any storage or transport."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class RunStatus(enum.StrEnum):
    """How a run stands: RUNNING, or how it ended (FINISHED, FAILED, KILLED)."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        """Whether the run has ended."""
        return self is not RunStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting. Embedded mode acts as the local owner of everything."""

    name: str
    is_owner: bool = False


DEFAULT_PROJECT = "default"
DEFAULT_EXPERIMENT = "Default"
"""Where experiments and models go when no project is named."""


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    description: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named group of runs within a project."""

    id: int
    project: str
    name: str
    description: str
    created_at: int
    created_by: str


@dataclass(frozen=True, slots=True)
class ExperimentActivity:
    """How many runs an experiment holds (deleted ones left out) and when the newest started."""

    experiment_id: int
    runs: int
    last_run_at: int | None


@dataclass(frozen=True, slots=True)
class Source:
    """Where a run's code came from."""

    entry_point: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None


class Metric(NamedTuple):
    """One logged value. A tuple: millions of them are made on the logging hot path."""

    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class SeriesBucket:
    """Values of one stretch of a metric's history: their envelope and the newest of them.

    `x_first` and `x_last` bound the stretch on the series' axis (step or wall time); `last`
    is the value with the highest (step, timestamp) in it. NaN is None in `min`/`max`."""

    x_first: int
    x_last: int
    count: int
    min: float | None
    max: float | None
    last: float | None


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """A metric's history, downsampled to at most a few hundred buckets for drawing.

    `points` is how many values lie in the range; when there are no more than the buckets
    asked for, each bucket is one value."""

    key: str
    axis: str
    points: int
    buckets: list[SeriesBucket]


SERIES_AXES = ("step", "time")
"""What a series can be bucketed by: the step, or the wall time the value was logged at."""


@dataclass(frozen=True, slots=True)
class ArtifactEntry:
    """One named file of a run, pointing at a content-addressed blob."""

    name: str
    digest: str
    size: int
    media_type: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Run:
    """A tracked run: its status, times, params, tags, latest metric values, source and environment."""

    id: str
    experiment_id: int
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    created_by: str
    parent_id: str | None = None
    source: Source = field(default_factory=Source)
    environment: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    deleted: bool = False
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """A flat dict: attributes, then `params.x`, `metrics.x`, `tags.x` columns."""
        record: dict[str, Any] = {
            "run_id": self.id,
            "run_name": self.name,
            "experiment_id": self.experiment_id,
            "status": self.status.value,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "created_by": self.created_by,
            "parent_run_id": self.parent_id,
            "git_commit": self.source.git_commit,
        }
        record.update({f"params.{k}": v for k, v in self.params.items()})
        record.update({f"metrics.{k}": v for k, v in self.metrics.items()})
        record.update({f"tags.{k}": v for k, v in self.tags.items()})
        return record


@dataclass(frozen=True, slots=True)
class LoggedModel:
    """A model a run logged in MLflow's format (MLflow 3's LoggedModel), apart from the
    registry: its files are the run's artifacts under `artifact_prefix`. Registering it makes
    a model version of it."""

    id: str
    experiment_id: int
    run_id: str
    name: str
    model_type: str
    status: str  # PENDING until its files are uploaded, then READY (or FAILED)
    created_at: int
    updated_at: int
    created_by: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def artifact_prefix(self) -> str:
        return f"logged-models/{self.id}"


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of search results; pass `next_page_token` back to get the next one."""

    runs: list[Run]
    next_page_token: str | None

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Any:
        return iter(self.runs)

    def __getitem__(self, index: int) -> Run:
        return self.runs[index]


ExperimentRef = str | int
