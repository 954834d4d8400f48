"""What a monitor watches, as YAML people edit:

    window: {rows: 5000}              # the last 5,000 predictions; or {hours: 24}
    columns: [age, income, plan]      # inputs to test for drift (default: all logged inputs)
    drift: {drift_share: 0.5, tests: {age: psi}, thresholds: {psi: 0.2}}
    alerts:
      - {name: inputs drifted, value: drift.share, above: 0.3, windows: 2}
      - {name: accuracy dropped, value: est.accuracy, below: 0.85, severity: critical}
    notify:
      - {type: webhook, url: "https://hooks.slack.com/services/..."}
      - {type: log, path: /var/log/loopline/alerts.jsonl}
      - {type: stdout}

Alert rules read any monitored value (see `loopline monitor show`): drift.share,
drift.<column>, drift.prediction, drift.label, perf.accuracy, est.accuracy, latency.p95_ms,
errors.rate, rows, ... A rule fires when its value is past the limit in `windows`
consecutive runs.
"""

from __future__ import annotations

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


class AlertRule(Strict):
    name: str = Field(min_length=1, max_length=100)
    value: str = Field(min_length=1)
    above: float | None = None
    below: float | None = None
    windows: int = Field(1, ge=1, le=100)  # consecutive runs past the limit before it fires
    severity: Literal["info", "warning", "critical"] = "warning"

    @model_validator(mode="after")
    def _one_limit(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        return self

    def breached(self, value: float | None) -> bool:
        if value is None:
            return False
        return value > self.above if self.above is not None else value < (self.below or 0.0)

    def describe(self) -> str:
        limit = f"> {self.above:g}" if self.above is not None else f"< {self.below:g}"
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
