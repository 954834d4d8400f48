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


@dataclass(frozen=True, slots=True)
class Forecast:
    """A value's trend, as of its newest run. Times are hours from that run."""

    runs: int
    slope_per_hour: float
    slope_low: float
    slope_high: float
    level: float  # the trend's value now
    holt_level: float
    holt_slope_per_hour: float
    crossing_hours: float | None = None  # when the trend meets the threshold (None: never)
    crossing_low: float | None = None
    crossing_high: float | None = None  # None: maybe never, within the interval

    def at(self, hours: float) -> float:
        """The trend's value `hours` from now."""
        return self.level + self.slope_per_hour * hours

    def describe(self, threshold: float | None = None) -> str:
        slopes = f"{self.slope_per_hour:+.4g}/h [{self.slope_low:+.4g}, {self.slope_high:+.4g}]"
        text = f"trend {slopes} over {self.runs} runs"
        if threshold is not None and self.crossing_hours is not None:
            late = "never" if self.crossing_high is None else f"{self.crossing_high:.1f} h"
            early = f"{self.crossing_low:.1f} h" if self.crossing_low is not None else "now"
            text += f"; crosses {threshold:g} in {self.crossing_hours:.1f} h ({early} to {late})"
        return text
