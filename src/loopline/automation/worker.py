"""`loopline worker`: enqueue what is due, take one job at a time under a lease, run it.

Work is shared through the metadata store alone. A due schedule becomes one job however
many workers see it (the job's dedupe key is the schedule and its due time); a job runs
on the worker that won the conditional UPDATE claiming it; a lease renewed by a heartbeat
marks it taken, and a job whose worker died is claimed again once its lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loopline.automation.service import next_due
from loopline.core.automation import Job, JobStatus, Trigger
from loopline.core.clock import now_ms
from loopline.core.errors import NotFound
from loopline.store import MetadataStore

log = logging.getLogger("loopline.worker")
JobRunner = Callable[[Job], dict[str, Any]]  # runs a job; its return value is the job's result
MAX_ATTEMPTS = 3  # a job whose worker died this many times is failed, not retried forever


@dataclass(frozen=True)
class WorkerOptions:
    lease_s: float = 60.0
    poll_s: float = 5.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        store: MetadataStore,
        run_job: JobRunner,
        options: WorkerOptions = WorkerOptions(),
        owner: str = "",
        periodic: Sequence[Callable[[], object]] = (),
    ) -> None:
        self._store = store
        self._automation = store.automation
        self._run_job = run_job
        self._periodic = periodic  # cheap checks run on every tick (canaries due for a decision)
        self._options = options
        self.owner = owner or worker_id()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        log.info("worker %s started", self.owner)
        while not self._stop.is_set():
            try:
                ran = self.tick()
            except Exception:  # the database may be away for a moment: try again later
                log.exception("worker %s: tick failed", self.owner)
                ran = None
            if ran is None:
                self._stop.wait(self._options.poll_s)

    def tick(self) -> Job | None:
        """Enqueue what is due, run the periodic checks, then at most one job; returns the
        job as it ended."""
        self.enqueue_due()
        for check in self._periodic:
            try:
                check()
            except Exception:
                log.exception("periodic check %s failed", getattr(check, "__name__", check))
        return self.run_one()

    def enqueue_due(self) -> None:
        now = now_ms()
        for schedule in self._automation.schedules():
            if not schedule.enabled or schedule.next_at > now:
                continue
            # Enqueue first (the dedupe key makes it idempotent), then move the schedule on;
            # missed runs (no worker was up) collapse into one, as next is due after now.
            self._automation.enqueue(
                schedule.kind, schedule.target, schedule.params,
                f"schedule {schedule.name} ({schedule.cron}) due", now,
                dedupe_key=f"schedule/{schedule.name}/{schedule.next_at}",
            )  # fmt: skip
            self._automation.advance_schedule(schedule.name, schedule.next_at, next_due(schedule.cron, now))
        for trigger in self._automation.triggers():
            if trigger.enabled:
                self._fire(trigger)

    def _fire(self, trigger: Trigger) -> None:
        try:
            opened = self._store.monitors.alerts(trigger.monitor)
        except NotFound:
            return  # the monitor was deleted
        for alert in sorted((a for a in opened if a.id > trigger.last_alert_id), key=lambda a: a.id):
            if not self._automation.consider_alert(trigger.name, alert.id):
                continue  # another worker has it
            if trigger.rule is not None and alert.rule != trigger.rule:
                continue
            now = now_ms()
            reason = (
                f"trigger {trigger.name}: alert {alert.id} of monitor {trigger.monitor} ({alert.message})"
            )
            fires = self._automation.fire(trigger.name, now, trigger.cooldown_s * 1000)
            cooling = f"inside the {trigger.cooldown_s}s cool-down after the trigger last fired"
            self._automation.enqueue(
                trigger.kind, trigger.target, trigger.params, reason, now,
                dedupe_key=f"trigger/{trigger.name}/{alert.id}",
                status=JobStatus.QUEUED if fires else JobStatus.SUPPRESSED, error=None if fires else cooling,
            )  # fmt: skip

    def run_one(self) -> Job | None:
        lease_ms = int(self._options.lease_s * 1000)
        job = self._automation.claim(self.owner, now_ms(), lease_ms)
        if job is None:
            return None
        if job.attempts > MAX_ATTEMPTS:
            gave_up = f"gave up: its worker stopped {job.attempts - 1} times before it finished"
            self._automation.finish(job.id, self.owner, JobStatus.FAILED, now_ms(), {}, gave_up)
            return self._automation.job(job.id)
        log.info("job %s: %s %s (%s), attempt %s", job.id, job.kind, job.target, job.reason, job.attempts)
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, lease_ms, done), daemon=True)
        beat.start()
        error: str | None = None
        try:
            result = self._run_job(job)
            status = JobStatus.FINISHED
        except Exception as exc:
            log.warning("job %s failed: %s", job.id, exc)
            result, status = {"traceback": traceback.format_exc()[-4000:]}, JobStatus.FAILED
            error = f"{type(exc).__name__}: {exc}"
        finally:
            done.set()
            beat.join()
        if not self._automation.finish(job.id, self.owner, status, now_ms(), result, error):
            log.warning("job %s: the lease was lost before it finished; its outcome is not recorded", job.id)
        return self._automation.job(job.id)

    def _heartbeat(self, job_id: int, lease_ms: int, done: threading.Event) -> None:
        while not done.wait(lease_ms / 3000):
            try:
                renewed = self._automation.renew(job_id, self.owner, now_ms() + lease_ms)
            except Exception:  # keep beating: the next renewal may get through before expiry
                log.exception("job %s: renewing the lease failed", job_id)
                continue
            if not renewed:
                log.warning("job %s: lease lost to another worker", job_id)
                return
