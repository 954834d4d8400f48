"""Entities of automation: cron schedules, alert triggers, and the jobs workers run."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobKind(enum.StrEnum):
    """What a job does; stored as its value (a plain string column, so a new kind needs no migration)."""

    PIPELINE = "pipeline"  # target: MODULE:PIPELINE, params: its parameters
    MONITOR = "monitor"  # target: a monitor's name
    RETRAIN = "retrain"  # target: a deployment with a retraining loop
    MATERIALIZE = "materialize"  # target: a feature view NAME or NAME@N; params: end, on, ray_address
    GC = "gc"  # target: "storage"; removes what the retention policy no longer keeps


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"  # leased by a worker until lease_expires_at
    FINISHED = "finished"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # a trigger fired inside its cool-down: recorded, not run


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    cron: str  # five fields, UTC
    kind: JobKind
    target: str
    params: dict[str, Any]
    enabled: bool
    next_at: int  # ms: when it is next due
    last_at: int | None
    created_at: int
    created_by: str


@dataclass(frozen=True, slots=True)
class Trigger:
    """Runs a job when a monitor opens an alert (of `rule`, or any rule when it is None)."""

    name: str
    monitor: str
    rule: str | None
    kind: JobKind
    target: str
    params: dict[str, Any]
    cooldown_s: int
    enabled: bool
    last_alert_id: int  # alerts up to this id have been considered
    last_fired_at: int | None
    created_at: int
    created_by: str


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: JobKind
    target: str
    params: dict[str, Any]
    reason: str  # why it exists: "schedule nightly due at ...", "alert 7 of monitor m (drift.share)"
    status: JobStatus
    attempts: int
    created_at: int
    started_at: int | None = None
    ended_at: int | None = None
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
