"""Monitors: a deployment watched against a reference dataset, one window of its
prediction log at a time.

Creating a monitor computes its reference once (`reference`); each run then reads one
window and records every monitored value (`evaluation`). Alert rules are evaluated on the run's values
and those of the runs before it; an alert opens once, stays open while its rule fires,
and resolves when it stops, each change sent to the monitor's notifiers.
"""

from __future__ import annotations

import difflib
import gzip
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from loopline.artifacts import BlobStore
from loopline.artifacts.tables import TableArea
from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.errors import AlreadyExists, InvalidInput
from loopline.core.monitoring import Alert, Forecast, Monitor, MonitorOutcome, MonitorRun
from loopline.core.names import model_name
from loopline.core.traffic import FeatureDeclaration, TrafficPolicy
from loopline.governance.authorization import OPERATIONS_PROJECT, Authorizer
from loopline.monitoring.evaluation import evaluate_window, monitored_values
from loopline.monitoring.features import FEATURE_VALUES, FeatureHealth, feature_values
from loopline.monitoring.notify import notifier_named, notify
from loopline.monitoring.reference import REFERENCE_ROWS, Reference, build_reference
from loopline.predictions.window import read_window
from loopline.services import Datasets, Deployments, Registry
from loopline.specs.monitor import AlertRule, MonitorSpec
from loopline.store import MetadataStore


class MonitorService:
    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        tables: TableArea,
        *,
        datasets: Datasets,
        deployments: Deployments,
        registry: Registry,
        authorizer: Authorizer,
        features: FeatureHealth | None = None,
    ) -> None:
        """`features`: the feature store, for deployments that declare online features."""
        self._store = store
        self._blobs = blobs
        self._tables = tables
        self.principal = authorizer.principal
        self._datasets = datasets
        self._deployments = deployments
        self._registry = registry
        self._access = authorizer
        self._features = features

    # definition ------------------------------------------------------------------------

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
        name = model_name(name)
        self._access.operations(Role.MAINTAINER)
        spec = spec or MonitorSpec()
        for notifier in spec.notify:
            notifier_named(notifier.type).check(notifier)
        built = self._reference(deployment, reference, target, trust)
        _check_alerts(spec, built, self._declared(deployment) is not None)
        blob = self._blobs.put_bytes(gzip.compress(orjson.dumps(built.to_dict()), 1, mtime=0))
        at = now_ms()
        monitor = Monitor(
            name,
            model_name(deployment),
            spec.model_dump(mode="json"),
            blob.digest,
            at,
            self.principal.name,
            at,
        )
        if replace:
            try:
                return self._store.monitors.create(monitor)
            except AlreadyExists:
                return self._store.monitors.replace(monitor)
        return self._store.monitors.create(monitor)

    def _reference(self, deployment: str, ref: str, target: str | None, trust: bool) -> Reference:
        policy = self._deployments.policy(deployment)
        version = self._registry.resolve(policy.answering_arms[0].target)
        model = self._registry.load(version.uri, trust=trust)
        dataset = self._datasets.get(ref)
        inputs = [c for c in model.signature.input_names if c in dataset.schema] if model.signature else []
        inputs = inputs or [c for c in dataset.schema if c != target]
        if target is not None and target not in dataset.schema:
            raise InvalidInput(f"{dataset.uri} has no column {target!r}; it has {list(dataset.schema)}")
        frame = self._datasets.read(dataset, [*inputs, *([target] if target else [])]).to_pandas()
        if len(frame) > REFERENCE_ROWS:
            frame = frame.sample(REFERENCE_ROWS, random_state=0)
        stored = self._datasets.reference_profile(dataset)
        return build_reference(model, version.uri, dataset.uri, frame, stored, inputs, target)

    def reference(self, monitor: Monitor) -> Reference:
        raw = self._blobs.read(monitor.reference_blob, f"monitor {monitor.name} (reference)")
        return Reference.from_dict(orjson.loads(gzip.decompress(raw)))

    def get(self, name: str) -> Monitor:
        self._access.operations(Role.VIEWER)
        return self._store.monitors.get(model_name(name))

    def list_all(self) -> list[Monitor]:
        if not self._access.visible(OPERATIONS_PROJECT):
            return []
        return self._store.monitors.list_all()

    def runs(self, name: str, limit: int = 100, with_details: bool = False) -> list[MonitorRun]:
        self._access.operations(Role.VIEWER)
        return self._store.monitors.runs(model_name(name), limit, with_details)

    def run_record(self, name: str, run_id: int | None = None) -> MonitorRun:
        self._access.operations(Role.VIEWER)
        if run_id is None:
            newest = self._store.monitors.runs(model_name(name), 1)
            if not newest:
                raise InvalidInput(f"monitor {name!r} has not run yet: `loopline monitor run {name}`")
            run_id = newest[0].id
        return self._store.monitors.run(model_name(name), run_id)

    def alerts(self, name: str | None = None, status: str | None = None) -> list[Alert]:
        self._access.operations(Role.VIEWER)
        return self._store.monitors.alerts(None if name is None else model_name(name), status)

    def report_html(self, name: str, run_id: int | None = None, *, inline_js: bool = True) -> str:
        """A self-contained HTML report of a run and the runs before it."""
        from loopline.monitoring.report import report_html

        return report_html(self, name, run_id, inline_js=inline_js)

    def report_png(self, name: str, target: Path, run_id: int | None = None) -> None:
        """The same report's figures as one PNG image at `target`."""
        from loopline.monitoring.report import report_png

        report_png(self, name, target, run_id)

    # a run ---------------------------------------------------------------------------------

    def run(self, name: str, at_ms: int | None = None) -> MonitorOutcome:
        """Evaluate the monitor on its window as of now (or `at_ms`), store the run, and
        open, update or resolve alerts."""
        self._access.operations(Role.MAINTAINER)
        monitor = self.get(name)
        spec = MonitorSpec.parse(monitor.spec)
        reference = self.reference(monitor)
        at = at_ms if at_ms is not None else now_ms()
        policy = self._deployments.policy(monitor.deployment)
        shadows = TrafficPolicy.shadow_arms(self._deployments.revisions(monitor.deployment), policy)
        window = read_window(self._tables, monitor.deployment, spec.window, at, shadows)
        values, details = evaluate_window(window, reference, spec)
        if (declared := self._declared(monitor.deployment, policy)) is not None:
            assert self._features is not None
            found, details["features"] = feature_values(self._features, declared, window)
            values.update(found)
        run = self._store.monitors.add_run(
            monitor.name, at, (window.start_ms, window.end_ms), len(window.rows), values, details
        )
        return self._alerts(monitor, spec, run)

    def _declared(self, deployment: str, policy: TrafficPolicy | None = None) -> FeatureDeclaration | None:
        """The online features the deployment declares, when there are any to watch."""
        policy = policy or self._deployments.policy(deployment)
        if self._features is None or policy.features is None or not policy.features.refs:
            return None
        return policy.features

    def _alerts(self, monitor: Monitor, spec: MonitorSpec, run: MonitorRun) -> MonitorOutcome:
        outcome = MonitorOutcome(run)
        if not spec.alerts:
            return outcome
        needed = max(r.windows if r.kind == "threshold" else r.history for r in spec.alerts)
        history = self._store.monitors.runs(monitor.name, needed)  # newest first
        for rule in spec.alerts:
            found = judge_rule(rule, history)
            if found is None:
                resolved = self._store.monitors.resolve_alert(monitor.name, rule.name, run.at)
                if resolved is not None:
                    outcome.resolved.append(self._notify(monitor, spec, resolved, "resolved"))
                continue
            message, evidence = found
            value = run.values.get(rule.value)
            evidence.update(
                rule=rule.describe(), kind=rule.kind, window=[run.window_start, run.window_end],
                drifted_columns=run.details.get("drifted_columns", []),
            )  # fmt: skip
            draft = Alert(
                0, monitor.name, rule.name, rule.severity, "firing", run.at, run.at, None, 1, value,
                f"{rule.name}: {message}", evidence,
            )  # fmt: skip
            alert, new = self._store.monitors.open_alert(monitor.name, draft)
            if new:
                outcome.opened.append(self._notify(monitor, spec, alert, "firing"))
            else:
                outcome.still_firing.append(alert)
        return outcome

    def forecast(self, name: str, value: str, *, runs: int = 24, threshold: float | None = None,
                 below: bool = True) -> Forecast | None:  # fmt: skip
        """Where `value` of the monitor's runs is heading: a robust trend over its last `runs`
        runs, and when it crosses `threshold` (going down if `below`); None with too few runs."""
        from loopline.monitoring.forecast import forecast

        history = self.runs(name, runs)
        if history and value not in history[0].values:
            raise InvalidInput(
                f"monitor {name} has no value {value!r}; it has {', '.join(history[0].values)}"
            )
        return forecast([r.at for r in history], [r.values.get(value) for r in history], threshold=threshold,
                        below=below)  # fmt: skip

    def _notify(self, monitor: Monitor, spec: MonitorSpec, alert: Alert, event: str) -> Alert:
        if not spec.notify:
            return alert
        payload = {
            "event": event,
            "monitor": monitor.name,
            "deployment": monitor.deployment,
            "rule": alert.rule,
            "severity": alert.severity,
            "message": alert.message if event == "firing" else f"resolved: {alert.message}",
            "value": alert.value,
            "first_at": alert.first_at,
            "evidence": alert.evidence,
        }
        outcomes = [{**o, "event": event, "at": now_ms()} for o in notify(spec.notify, payload)]
        self._store.monitors.record_notifications(monitor.name, alert.id, outcomes)
        return self._store.monitors.alert(monitor.name, alert.id)


# --- the values of one window -----------------------------------------------------------------


def _check_alerts(spec: MonitorSpec, reference: Reference, with_features: bool) -> None:
    """An alert on a value the monitor never produces would never fire: refused, with the
    nearest names."""
    produced = monitored_values(reference, spec.columns or ()) + (FEATURE_VALUES if with_features else [])
    for rule in spec.alerts:
        if rule.value not in produced:
            near = difflib.get_close_matches(rule.value, produced, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
            raise InvalidInput(
                f"alert {rule.name!r} watches {rule.value!r}, which this monitor does not produce; "
                f"{hint}it produces {', '.join(produced)}"
            )


def judge_rule(rule: AlertRule, history: list[MonitorRun]) -> tuple[str, dict[str, Any]] | None:
    """Whether `rule` fires on the monitor's runs (newest first): its message and evidence,
    or None."""
    from loopline.monitoring.forecast import cusum, forecast

    newest = history[0].values.get(rule.value) if history else None
    if rule.change is not None:
        runs = history[: rule.history][::-1]
        change = rule.change
        found = cusum(
            [r.values.get(rule.value) for r in runs], baseline_runs=change.baseline_runs, drift=change.drift,
            threshold=change.threshold, direction=change.direction,
        )  # fmt: skip
        if found is None or not found.changed or found.since_run is None:
            return None
        since = runs[min(found.since_run, len(runs) - 1)]
        message = (
            f"{rule.value} shifted {found.direction} (CUSUM {found.statistic:.1f} > {found.threshold:g}) "
            f"since run {since.id}; now {_shown(newest)}"
        )
        return message, {"cusum": asdict(found), "since_run": since.id}
    if rule.within is not None:
        runs = history[: rule.history]
        below = rule.below is not None
        trend = forecast(
            [r.at for r in runs], [r.values.get(rule.value) for r in runs], threshold=rule.limit, below=below
        )
        significant = trend is not None and (trend.slope_high < 0 if below else trend.slope_low > 0)
        if trend is None or not significant or trend.crossing_hours is None:
            return None
        if trend.crossing_hours > rule.horizon_hours:
            return None
        message = f"{rule.value} = {_shown(newest)} is forecast to cross {rule.limit:g}: " + trend.describe(
            rule.limit
        )
        return message, {"forecast": asdict(trend), "horizon_hours": rule.horizon_hours}
    recent = history[: rule.windows]
    if len(recent) < rule.windows or not all(rule.breached(r.values.get(rule.value)) for r in recent):
        return None
    evidence = {"runs": [{"run": r.id, "at": r.at, "value": r.values.get(rule.value)} for r in recent]}
    return f"{rule.value} = {_shown(newest)} ({rule.describe()})", evidence


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
