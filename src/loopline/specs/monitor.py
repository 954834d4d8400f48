"""What a monitor watches, as YAML people edit:

    window: {rows: 5000}              # the last 5,000 predictions; or {hours: 24}
    columns: [age, income, plan]      # inputs to test for drift (default: all logged inputs)
    drift: {drift_share: 0.5, tests: {age: psi}, thresholds: {psi: 0.2}}
    alerts:
      - {name: inputs drifted, value: drift.share, above: 0.3, windows: 2}
      - {name: accuracy dropped, value: est.accuracy, below: 0.85, severity: critical}
      - {name: accuracy heading down, value: est.accuracy, below: 0.85, within: 6h}
      - {name: accuracy shifted, value: perf.accuracy, change: {direction: down}}
    notify:
      - {type: webhook, url: "https://hooks.slack.com/services/..."}
      - {type: log, path: /var/log/loopline/alerts.jsonl}
      - {type: stdout}

Alert rules read any monitored value (see `loopline monitor show`): drift.share,
drift.<column>, drift.prediction, drift.label, perf.accuracy, est.accuracy, latency.p95_ms,
errors.rate, rows, ... A rule fires when its value is past the limit in `windows`
consecutive runs; a forecast rule (`within`) when the value's trend crosses the limit within
the horizon; a change rule when a CUSUM finds the value shifted.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from loopline.core.plugins import PLUGIN_NAME
from loopline.specs.document import Document, Strict


class WindowSpec(Strict):
    """The span of a window: the last `rows` predictions, or the last `hours`."""

    rows: int | None = Field(None, gt=0)
    hours: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> WindowSpec:
        if (self.rows is None) == (self.hours is None):
            raise ValueError("give exactly one of rows (the last N predictions) or hours")
        return self


class DriftSpec(Strict):
    drift_share: float = Field(0.5, gt=0, le=1)
    tests: dict[str, str] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)


class ChangeSpec(Strict):
    """A change-point rule: a self-starting two-sided CUSUM on the value's runs
    (`monitoring.forecast`). With `threshold` 5, 8% of unchanged values raise a false alarm
    within 100 runs (21% with 4); `drift` is half the shift it looks for, in standard
    deviations."""

    direction: Literal["up", "down", "both"] = "both"
    threshold: float = Field(5.0, gt=0)
    drift: float = Field(0.5, ge=0)
    baseline_runs: int = Field(10, ge=3, le=1000)  # the runs that define "unchanged"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d)\s*$")
_UNIT_HOURS = {"m": 1 / 60, "h": 1.0, "d": 24.0}


class AlertRule(Strict):
    """One alert of a monitor. Three kinds:
    - threshold: `{value, above | below}`, past the limit in `windows` consecutive runs;
    - forecast: the same with `within: 6h`: the value's trend over its last `history` runs
      (a significant one) crosses the limit within that horizon;
    - change: `{value, change: {...}}`: a CUSUM finds the value shifted."""

    name: str = Field(min_length=1, max_length=100)
    value: str = Field(min_length=1)
    above: float | None = None
    below: float | None = None
    windows: int = Field(1, ge=1, le=100)  # consecutive runs past the limit before it fires
    within: str | None = None  # a forecast horizon: 90m, 6h, 2d
    change: ChangeSpec | None = None
    history: int = Field(24, ge=6, le=1000)  # runs a forecast or change rule reads
    severity: Literal["info", "warning", "critical"] = "warning"

    @model_validator(mode="after")
    def _one_limit(self) -> AlertRule:
        if self.change is not None:
            if self.above is not None or self.below is not None or self.within is not None:
                raise ValueError("a change rule takes no above, below or within")
            return self
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below (or a change)")
        if self.within is not None and not _DURATION.match(self.within):
            raise ValueError(f"within must be a duration such as 90m, 6h or 2d, got {self.within!r}")
        return self

    @property
    def kind(self) -> str:
        return "change" if self.change is not None else "forecast" if self.within is not None else "threshold"

    @property
    def horizon_hours(self) -> float:
        """The forecast horizon, in hours (0 for other rules)."""
        found = _DURATION.match(self.within or "")
        return float(found.group(1)) * _UNIT_HOURS[found.group(2)] if found else 0.0

    @property
    def limit(self) -> float | None:
        return self.above if self.above is not None else self.below

    def breached(self, value: float | None) -> bool:
        if value is None or self.limit is None:
            return False
        return value > self.above if self.above is not None else value < (self.below or 0.0)

    def describe(self) -> str:
        if self.change is not None:
            change = self.change
            cusum = f"CUSUM h = {change.threshold:g}, k = {change.drift:g}"
            return f"{self.value} shifts {change.direction} ({cusum})"
        limit = f"> {self.above:g}" if self.above is not None else f"< {self.below:g}"
        if self.within is not None:
            return f"{self.value} heads {limit} within {self.within.strip()} (trend over {self.history} runs)"
        runs = "" if self.windows == 1 else f" in {self.windows} consecutive windows"
        return f"{self.value} {limit}{runs}"


class NotifierSpec(Strict):
    """Where a monitor's alerts go: a built-in notifier (webhook, log, stdout) or one that an
    installed package provides, with its `options`."""

    type: str = Field(pattern=PLUGIN_NAME.pattern)
    url: str | None = None  # webhook
    path: str | None = None  # log
    allow_private_network: bool = False  # webhook: permit loopback, link-local, private addresses
    timeout_s: float = Field(5.0, gt=0, le=60)
    options: dict[str, Any] = Field(default_factory=dict)  # a plug-in notifier's own settings

    @model_validator(mode="after")
    def _target(self) -> NotifierSpec:
        if self.type == "webhook" and not self.url:
            raise ValueError("a webhook needs a url")
        if self.type == "log" and not self.path:
            raise ValueError("a log notifier needs a path")
        return self


class MonitorSpec(Document):
    kind: ClassVar[str] = "monitor spec"

    window: WindowSpec = WindowSpec(rows=5000)
    columns: list[str] | None = None
    drift: DriftSpec = DriftSpec()
    alerts: list[AlertRule] = Field(default_factory=list)
    notify: list[NotifierSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_rules(self) -> MonitorSpec:
        names = [r.name for r in self.alerts]
        if len(set(names)) != len(names):
            raise ValueError("alert rule names must be unique")
        return self
