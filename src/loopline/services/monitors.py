"""The monitor service's interface: monitors of deployments, their runs and alerts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loopline.core.entities import Principal
from loopline.core.monitoring import Alert, Forecast, Monitor, MonitorOutcome, MonitorRun

if TYPE_CHECKING:
    from loopline.specs.monitor import MonitorSpec


class Monitors(Protocol):
    """Monitors that evaluate windows of a deployment's prediction log, acting as `principal`."""

    principal: Principal

    def create(
        self,
        name: str,
        deployment: str,
        reference: str,
        *,
        target: str | None = None,
        spec: MonitorSpec | None = None,
        replace: bool = False,
        trust: bool = False,
    ) -> Monitor:
        """Watch `deployment` against dataset `reference` (NAME or NAME@VERSION); `target`
        names the dataset's label column, which label drift and estimation need."""

    def get(self, name: str) -> Monitor:
        """A monitor with its spec."""

    def list_all(self) -> list[Monitor]:
        """Every monitor the principal sees."""

    def runs(self, name: str, limit: int = 100, with_details: bool = False) -> list[MonitorRun]:
        """The monitor's newest runs first."""

    def run_record(self, name: str, run_id: int | None = None) -> MonitorRun:
        """One run with its details (the newest by default)."""

    def alerts(self, name: str | None = None, status: str | None = None) -> list[Alert]:
        """Alerts of one monitor or all, by status (firing, resolved)."""

    def report_html(self, name: str, run_id: int | None = None, *, inline_js: bool = True) -> str:
        """A self-contained HTML report of a run and the runs before it."""

    def report_png(self, name: str, target: Path, run_id: int | None = None) -> None:
        """The same report's figures as one PNG image at `target`."""

    def forecast(
        self, name: str, value: str, *, runs: int = 24, threshold: float | None = None, below: bool = True
    ) -> Forecast | None:
        """Where `value` of the monitor's last `runs` runs is heading (a robust trend), and
        when it crosses `threshold` going down (`below`) or up; None with too few runs."""

    def run(self, name: str, at_ms: int | None = None) -> MonitorOutcome:
        """Evaluate the monitor on its window as of now (or `at_ms`), store the run, and open,
        update or resolve alerts."""
