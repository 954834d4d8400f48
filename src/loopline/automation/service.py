"""Declaring schedules and triggers, and enqueueing jobs by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loopline.core.access import Role
from loopline.core.automation import Job, JobKind, Schedule, Trigger
from loopline.core.clock import now_ms
from loopline.core.errors import InvalidInput, NotFound, PermissionDenied
from loopline.core.features import check_identifier
from loopline.core.pipelines import PipelineRun
from loopline.core.validation import check_name
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.store import MetadataStore, atomic


def _name(kind: str, name: str) -> str:
    if len(check_name(kind, name)) > 128:
        raise InvalidInput(f"{kind} {name[:40]!r}... is longer than 128 characters")
    return name


def next_due(cron: str, after_ms: int) -> int:
    """The first time strictly after `after_ms` that the cron expression (UTC) names."""
    from croniter import croniter

    start = datetime.fromtimestamp(after_ms / 1000, UTC)
    return int(croniter(cron, start).get_next(float) * 1000)


def check_cron(cron: str) -> str:
    from croniter import croniter

    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise InvalidInput(
            f"cron expression {cron!r} is not valid: give five fields, minute hour day month weekday "
            "(e.g. '0 3 * * *' for 03:00 UTC every day)"
        )
    return cron


def check_target(kind: JobKind, target: str) -> str:
    """`target` if it is well formed for a job of `kind` (whether it exists is checked apart)."""
    if kind is JobKind.PIPELINE:
        module, _, attribute = target.partition(":")
        if not module or not attribute or not all(p.isidentifier() for p in [*module.split("."), attribute]):
            raise InvalidInput(f"pipeline {target!r} is not MODULE:PIPELINE (e.g. training.flows:nightly)")
    elif kind is JobKind.MATERIALIZE:
        feature_view_target(target)
    elif kind is JobKind.GC:
        if target != GC_TARGET:
            raise InvalidInput(f"a gc job's target is {GC_TARGET!r}, not {target[:80]!r}")
    else:
        _name(f"{kind.value} target", target)
    return target


def feature_view_target(target: str) -> tuple[str, int | None]:
    """The name and version (None: the newest when the job runs) of a materialize target."""
    name, at, version = target.partition("@")
    if at and not version.isdigit():
        raise InvalidInput(f"feature view {target!r:.80} is not NAME or NAME@VERSION (e.g. customer_stats@2)")
    check_identifier("feature view name", name)
    return name, int(version) if at else None


GC_TARGET = "storage"
"""The target of every gc job: the store it runs on."""

RUN_ON = ("local", "ray")
"""Where a materialize job may run: in the worker's process, or as a Ray task."""


@dataclass(frozen=True)
class MaterializeOptions:
    """A materialize job's params, checked."""

    end: datetime | None  # up to when; None: the time the job runs
    ray_address: str | None  # None: in the worker's process; "local": a Ray the worker starts


def materialize_options(params: Mapping[str, Any]) -> MaterializeOptions:
    """Check a materialize job's params: `end` (an ISO time, UTC unless it names a zone),
    `on` ("local" or "ray") and `ray_address` (with on=ray; default "local")."""
    unknown = sorted(set(params) - {"end", "on", "ray_address"})
    if unknown:
        raise InvalidInput(
            f"a materialize job takes the params end, on and ray_address, not {', '.join(unknown)}"
        )
    end, on, address = params.get("end"), params.get("on", "local"), params.get("ray_address")
    at: datetime | None = None
    if end is not None:
        try:
            at = datetime.fromisoformat(end) if isinstance(end, str) else None
        except ValueError:
            at = None
        if at is None:
            raise InvalidInput(f"end {end!r:.60} is not an ISO time, e.g. 2024-03-01T00:00:00+00:00")
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # UTC, as schedules are
    if on not in RUN_ON:
        raise InvalidInput(f"on {on!r:.40} is not one of {', '.join(RUN_ON)}")
    if address is not None and (on != "ray" or not isinstance(address, str) or not address.strip()):
        raise InvalidInput(
            "ray_address goes with on=ray: a Ray cluster's address, or 'local' to start Ray in the worker"
        )
    return MaterializeOptions(at, (address or "local") if on == "ray" else None)


def check_pipeline_allowed(target: str, allowed: Sequence[str] | None) -> None:
    """Refuse a pipeline outside the worker's allowed modules (None: any). Importing a
    pipeline runs its module's code, and any maintainer may queue one by name."""
    module = target.partition(":")[0]
    if allowed is not None and not any(module == m or module.startswith(f"{m}.") for m in allowed):
        raise PermissionDenied(
            f"pipeline {target!r} is outside the modules pipelines may be imported from here "
            f"({', '.join(allowed) or 'none yet'}): name its module in LOOPLINE_WORKER_PIPELINES "
            "(or `loopline worker --allow-pipelines`)"
        )


class AutomationService:
    """Schedules, triggers and queued jobs, acting as `authorizer.principal` (a maintainer
    declares them, a viewer reads them)."""

    def __init__(self, store: MetadataStore, *, authorizer: Authorizer, audit: AuditTrail) -> None:
        self._store = store
        self._principal = authorizer.principal
        self._access = authorizer
        self._audit = audit

    def _target(self, kind: JobKind, target: str) -> str:
        self._access.operations(Role.MAINTAINER)
        if kind is JobKind.GC and not self._principal.is_owner:  # its job removes data for good
            raise PermissionDenied(
                f"only an administrator may schedule or queue gc; {self._principal.name} is not one"
            )
        check_target(kind, target)
        if kind is JobKind.RETRAIN:
            self._store.loops.get(target)  # NotFound names `loopline loop declare`
        if kind is JobKind.MATERIALIZE:
            try:
                self._store.features.view(*feature_view_target(target))
            except NotFound as exc:
                raise NotFound(
                    f"cannot materialize {target!r}: {exc}; apply its definition first "
                    "(`loopline features apply FILE`), or see `loopline features list`"
                ) from None
        return target

    @staticmethod
    def _params(kind: JobKind, params: dict[str, Any] | None) -> dict[str, Any]:
        """A copy of the params, checked where the kind defines them (a pipeline's are
        checked against its signature by whoever can import it)."""
        given = dict(params or {})
        if kind is JobKind.MATERIALIZE:
            materialize_options(given)
        if kind is JobKind.GC and given:
            raise InvalidInput(
                "a gc job takes no params (the retention policy says what it removes), "
                f"not {', '.join(sorted(given))}"
            )
        return given

    @atomic
    def create_schedule(
        self, name: str, cron: str, kind: JobKind, target: str, params: dict[str, Any] | None = None
    ) -> Schedule:
        now = now_ms()
        schedule = Schedule(
            _name("schedule name", name), check_cron(cron), kind, self._target(kind, target),
            self._params(kind, params), True, next_due(cron, now), None, now, self._principal.name,
        )  # fmt: skip
        added = self._store.automation.add_schedule(schedule)
        self._audit.record(
            "schedule.create", f"schedule:{name}", after={"cron": cron, "target": target}, params=params
        )
        return added

    @atomic
    def create_trigger(
        self,
        name: str,
        monitor: str,
        kind: JobKind,
        target: str,
        params: dict[str, Any] | None = None,
        *,
        rule: str | None = None,
        cooldown_s: int = 3600,
    ) -> Trigger:
        """Fire on alerts the monitor opens from now on (not on those already open)."""
        if cooldown_s < 0:
            raise InvalidInput(f"cooldown must be >= 0 seconds, got {cooldown_s}")
        self._store.monitors.get(monitor)  # it must exist
        seen = max((a.id for a in self._store.monitors.alerts(monitor, limit=1_000_000)), default=0)
        trigger = Trigger(
            _name("trigger name", name), monitor, rule, kind, self._target(kind, target),
            self._params(kind, params), cooldown_s, True, seen, None, now_ms(), self._principal.name,
        )  # fmt: skip
        added = self._store.automation.add_trigger(trigger)
        self._audit.record(
            "trigger.create", f"trigger:{name}", after={"monitor": monitor, "rule": rule, "target": target},
            cooldown_s=cooldown_s,
        )  # fmt: skip
        return added

    @atomic
    def enqueue(self, kind: JobKind, target: str, params: dict[str, Any] | None = None) -> Job:
        job = self._store.automation.enqueue(
            kind,
            self._target(kind, target),
            self._params(kind, params),
            f"queued by {self._principal.name}",
            now_ms(),
        )
        assert job is not None  # no dedupe key: always new
        self._audit.record(
            "job.enqueue", f"{kind.value}:{job.target}", after={"job": job.id, "params": job.params}
        )
        return job

    def schedules(self) -> list[Schedule]:
        self._access.operations(Role.VIEWER)
        return self._store.automation.schedules()

    def triggers(self) -> list[Trigger]:
        self._access.operations(Role.VIEWER)
        return self._store.automation.triggers()

    def jobs(self, limit: int = 100) -> list[Job]:
        self._access.operations(Role.VIEWER)
        return self._store.automation.jobs(limit=limit)

    def pipeline_runs(self, pipeline: str | None = None, limit: int = 50) -> list[PipelineRun]:
        self._access.operations(Role.VIEWER)
        return self._store.pipelines.list_runs(pipeline, limit)

    def pipeline_run(self, run_id: str) -> PipelineRun:
        self._access.operations(Role.VIEWER)
        return self._store.pipelines.get_run(run_id)

    @atomic
    def delete_schedule(self, name: str) -> None:
        self._access.operations(Role.MAINTAINER)
        self._store.automation.delete_schedule(name)
        self._audit.record("schedule.delete", f"schedule:{name}")

    @atomic
    def delete_trigger(self, name: str) -> None:
        self._access.operations(Role.MAINTAINER)
        self._store.automation.delete_trigger(name)
        self._audit.record("trigger.delete", f"trigger:{name}")
