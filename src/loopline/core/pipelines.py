"""Entities of pipelines: a run of a pipeline and the run of each of its steps."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class StepStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    CACHED = "CACHED"  # its outputs are those of an earlier run with the same cache key
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # an upstream step failed


@dataclass(frozen=True, slots=True)
class OutputRef:
    """Where a step output lives: a blob (Parquet, .npy), a JSON value, or a model version."""

    kind: str  # parquet | npy | json | model
    digest: str  # sha256 of the stored bytes (json: of its canonical text)
    value: Any = None  # json: the value; model: {"name", "version"}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "digest": self.digest, "value": self.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputRef:
        return cls(data["kind"], data["digest"], data.get("value"))


@dataclass(frozen=True, slots=True)
class StepRun:
    pipeline_run_id: str
    name: str  # unique within the pipeline run: "train", "train_2"
    step: str  # the step function's qualified name
    status: StepStatus
    cache_key: str
    run_id: str | None  # the tracked run that computed the outputs (for CACHED: the original)
    output: OutputRef | None
    attempts: int
    started_at: int
    ended_at: int | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PipelineRun:
    id: str  # the id of its tracked run
    pipeline: str
    status: str  # RUNNING | FINISHED | FAILED
    executor: str
    params: dict[str, Any]
    started_at: int
    ended_at: int | None
    resumed_from: str | None = None
    steps: list[StepRun] = field(default_factory=list)
