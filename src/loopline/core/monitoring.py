"""Entities of monitoring: monitors, their runs over windows of the log, and alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Monitor:
    name: str
    deployment: str
    spec: dict[str, Any]  # a MonitorSpec as JSON
    reference_blob: str
    created_at: int
    created_by: str
    updated_at: int


@dataclass(frozen=True, slots=True)
class MonitorRun:
    id: int  # the monitor's own run number: 1 for its first
    monitor: str
    at: int
    window_start: int | None
    window_end: int | None
    rows: int
    values: dict[str, float | None]  # every monitored value: drift.share, perf.accuracy, latency.p95_ms...
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    monitor: str
    rule: str
    severity: str
    status: str  # firing | resolved
    first_at: int
    last_at: int
    resolved_at: int | None
    occurrences: int
    value: float | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MonitorOutcome:
    run: MonitorRun
    opened: list[Alert] = field(default_factory=list)  # newly firing
    resolved: list[Alert] = field(default_factory=list)
    still_firing: list[Alert] = field(default_factory=list)
