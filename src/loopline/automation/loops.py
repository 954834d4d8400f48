"""The closed loop: retrain on fresh data, gate the challenger against the champion, give it
a canary share of live traffic, then promote it or roll it back, on the record.

    start()    idle -> retraining -> canary     (or back to idle: refused, failed, cool-down)
    advance()  canary -> deciding -> idle       (promoted or rolled back)

Each transition is a conditional update of the loop's state, so two workers never take the
same step; every decision is an event with its reason and evidence (`loopline loop status`).
A failed or refused retraining leaves the champion serving, and a cool-down after every
attempt keeps a noisy monitor from starting a retraining storm.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.errors import ApprovalRequired, Conflict, InvalidInput
from loopline.core.loops import Loop, LoopEvent, LoopState
from loopline.core.registry import ModelVersion
from loopline.core.traffic import TrafficPolicy
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.services import Datasets, Deployments, Promotion, Registry
from loopline.specs.contract import Contract
from loopline.specs.loop import LoopPolicy
from loopline.store import atomic

if TYPE_CHECKING:
    import pandas as pd

    from loopline.artifacts.tables import TableArea
    from loopline.automation.canary import Judgement
    from loopline.core.datasets import ValidationReport
    from loopline.specs.monitor import WindowSpec
    from loopline.store import MetadataStore

AUDITED = {
    "declared",
    "canary",
    "shadow",
    "refused",
    "failed",
    "promoted",
    "rolled_back",
    "awaiting_approval",
    "forced",
    "held",
    "guarded",
    "escalated",
    "quarantined",
}  # decisions, and a cool-down overridden by hand
GUARD_ACTIONS = ("guarded", "escalated")  # rate-limited by the guard's every_minutes
log = logging.getLogger("loopline.loop")
# A worker that died mid-step leaves the loop there; after this long it is reset.
ABANDONED_AFTER_MS = {LoopState.RETRAINING: 6 * 3_600_000, LoopState.DECIDING: 10 * 60_000}
RunPipeline = Callable[[str, dict[str, Any]], Any]  # (MODULE:PIPELINE, params) -> its output


class LoopService:
    def __init__(
        self,
        store: MetadataStore,
        tables: TableArea,
        *,
        datasets: Datasets,
        deployments: Deployments,
        promotion: Promotion,
        registry: Registry,
        authorizer: Authorizer,
        audit: AuditTrail,
        run_pipeline: RunPipeline | None = None,
    ) -> None:
        self._store = store
        self._tables = tables
        self._principal = authorizer.principal
        self._run_pipeline = run_pipeline
        self.datasets = datasets
        self.deployments = deployments
        self.promotion = promotion
        self.registry = registry
        self._access = authorizer
        self._audit = audit

    # declaring and reading ------------------------------------------------------------------

    @atomic
    def declare(self, policy: LoopPolicy) -> Loop:
        """Declare (or replace) a deployment's retraining policy, checked now rather than at
        its first retraining: the deployment, model and reference exist, the reference holds
        the target, and the gates parse."""
        from loopline.registry.policy import Policy

        self._access.operations(Role.MAINTAINER)
        self.deployments.get(policy.deployment)  # it must exist
        self.registry.get_model(policy.model)
        reference = self.datasets.get(policy.reference_dataset)
        if policy.target not in reference.schema:
            raise InvalidInput(
                f"the reference {reference.uri} has no target column {policy.target!r}; "
                f"it has {', '.join(reference.schema)}"
            )
        Policy.from_dict(policy.gates)
        if policy.contract is not None:
            Contract.parse(
                policy.contract, f"the data contract of the retraining policy of {policy.deployment}"
            )
        loop = self._store.loops.declare(policy.deployment, policy.model_dump(), now_ms())
        self._event(policy.deployment, "declared", f"retraining policy for {policy.deployment} declared")
        return loop

    def get(self, deployment: str) -> Loop:
        self._access.operations(Role.VIEWER)
        return self._store.loops.get(deployment)

    def events(self, deployment: str) -> list[LoopEvent]:
        self.get(deployment)
        return self._store.loops.events(deployment)

    @atomic
    def _event(self, deployment: str, kind: str, message: str, **evidence: Any) -> LoopEvent:
        event = LoopEvent(0, deployment, now_ms(), kind, message, self._principal.name, evidence)
        if kind in AUDITED:
            self._audit.record(f"loop.{kind}", f"deployment:{deployment}", reason=message)
        return self._store.loops.record(event)

    def _policy(self, loop: Loop) -> LoopPolicy:
        return LoopPolicy.parse(loop.policy, f"the retraining policy of {loop.deployment}")

    # start: retrain, gate, roll out ----------------------------------------------------------

    def start(self, deployment: str, reason: str, *, force: bool = False) -> LoopEvent:
        """Retrain now (a trigger fired, or someone asked); returns the event that ends this step.
        `force` overrides a cool-down (a failed start cools down too), on the audit trail."""
        self._access.operations(Role.MAINTAINER)
        loop = self.get(deployment)
        now = now_ms()
        if loop.state is not LoopState.IDLE:
            return self._event(
                deployment, "suppressed", f"{reason}; a retraining is already under way ({loop.state})"
            )
        cooling = loop.cooldown_until is not None and now < loop.cooldown_until
        if cooling and not force:
            minutes = ((loop.cooldown_until or now) - now) / 60_000
            return self._event(
                deployment, "suppressed",
                f"{reason}; cooling down for {minutes:.0f} more minutes (start --force overrides it)",
            )  # fmt: skip
        rollbacks = self._rollbacks_in_a_row(deployment)
        limit = int(loop.policy.get("max_rollbacks", 3))
        if rollbacks >= limit and not force:
            return self._event(
                deployment, "suppressed",
                f"{reason}; the last {rollbacks} challengers were rolled back, so the loop waits for "
                "a person (start --force retrains anyway)",
            )  # fmt: skip
        if cooling:
            self._event(deployment, "forced", f"{reason}; the cool-down overridden by {self._principal.name}")
        if not self._store.loops.move(
            deployment, LoopState.IDLE, LoopState.RETRAINING, now, cooled_by=None if force else now,
            stage_started_at=now,
        ):  # fmt: skip
            message = f"{reason}; another worker started it, or it is cooling down"
            return self._event(deployment, "suppressed", message)
        try:
            self._event(deployment, "triggered", reason)
            return self._retrain(self._policy(loop))
        except Exception as exc:
            return self._fail(loop, LoopState.RETRAINING, f"retraining failed: {type(exc).__name__}: {exc}")

    def _fail(self, loop: Loop, from_state: LoopState, message: str) -> LoopEvent:
        """Put the champion back in front of all traffic and the loop back to idle, on record."""
        trace = traceback.format_exc()[-4000:]
        with contextlib.suppress(Exception):  # the deployment may be gone; the loop must still end
            self._serve_champion(self._policy(loop), f"{message} (retraining loop)")
        cooldown = now_ms() + int(float(loop.policy.get("cooldown_minutes", 60)) * 60_000)
        self._store.loops.move(
            loop.deployment, from_state, LoopState.IDLE, now_ms(), challenger=None, stage_started_at=None,
            cooldown_until=cooldown,
        )  # fmt: skip
        message = f"{message}; the champion keeps serving"
        return self._event(loop.deployment, "failed", message, traceback=trace)

    def reset(self, deployment: str, reason: str) -> LoopEvent:
        """Abandon what the loop was doing (its worker died, say): the champion serves again."""
        self._access.operations(Role.MAINTAINER)
        loop = self.get(deployment)
        if loop.state is LoopState.IDLE:
            raise Conflict(f"the loop of {deployment} is idle; there is nothing to reset")
        return self._fail(loop, loop.state, f"reset from {loop.state.value}: {reason}")

    def _retrain(self, policy: LoopPolicy) -> LoopEvent:
        from loopline.core.promotion import PromotionRefused

        if self._run_pipeline is None:
            raise InvalidInput("this loop service cannot run pipelines (give it run_pipeline)")
        champion = self.registry.resolve(f"models:/{policy.model}@champion")
        reference = self._reference(policy)
        production = self._production(policy, reference)
        if policy.contract is not None and len(production):
            checked = self.datasets.validate(
                production,
                Contract.parse(policy.contract),
                source=f"labelled production rows of {policy.deployment}",
            )
            if not checked.passed:
                event = self._quarantine(policy, production, checked)
                if policy.on_invalid_data == "stop":
                    self._finish(policy, LoopState.RETRAINING)
                    return event
                reference, production = self._last_good(policy, reference), production.head(0)
        training, holdout, counts = self._split(policy, reference, production)
        dataset, _ = self.datasets.register(
            f"{policy.deployment}-training", training, description=f"retraining data of {policy.deployment}"
        )
        self._event(
            policy.deployment, "data", f"training on {dataset.uri}: {counts['reference']} reference rows and "
            f"{counts['production_train']} labelled production rows; {counts['holdout']} rows held out",
            dataset=dataset.uri, **counts,
        )  # fmt: skip
        output = self._run_pipeline(policy.pipeline, {**policy.params, "dataset": dataset.uri})
        if not isinstance(output, ModelVersion) or output.model != policy.model:
            raise InvalidInput(f"pipeline {policy.pipeline} must return a version of model {policy.model}")
        try:
            report = self.promotion.promote(
                policy.model, output.version, "challenger", baseline="champion",
                policy=policy.gates, data=holdout, target=policy.target,
            )  # fmt: skip
        except PromotionRefused as refused:
            self._finish(policy, LoopState.RETRAINING)
            failed = ", ".join(r.gate for r in refused.report.results if not r.passed)
            return self._event(
                policy.deployment, "refused",
                f"{output.uri} failed the gates {failed} against champion version {champion.version}; "
                "the champion stays",
                report=refused.report.to_dict(),
            )  # fmt: skip
        rollout = policy.rollout
        champion_uri = f"models:/{policy.model}@champion"
        if rollout.mode == "shadow":
            traffic = TrafficPolicy.shadow(champion_uri, output.uri)
            share = "a copy of every request (its answers are logged, never returned)"
        else:
            traffic = TrafficPolicy.canary(champion_uri, output.uri, rollout.percent)
            share = f"{rollout.percent:g}% of live traffic"
        needs = self._needs(policy)
        self.deployments.set_traffic(
            policy.deployment, traffic, f"{rollout.mode} of {output.uri} (retraining loop)"
        )
        now = now_ms()
        self._store.loops.move(
            policy.deployment, LoopState.RETRAINING, LoopState.CANARY, now,
            champion=champion.version, challenger=output.version, stage_started_at=now,
        )  # fmt: skip
        return self._event(
            policy.deployment, rollout.mode,
            f"{output.uri} passed the gates against version {champion.version}; it now takes "
            f"{share} for at least {rollout.min_requests} of its requests and at most "
            f"{rollout.max_minutes:g} minutes; the checks need {needs}",
            report=report.to_dict(), challenger=output.version, champion=champion.version,
        )  # fmt: skip

    def _needs(self, policy: LoopPolicy) -> str:
        """What the canary will need to decide, sized on the champion's last day of traffic."""
        from loopline.automation.canary import needed

        report = self.deployments.report(policy.deployment, now_ms() - 86_400_000)
        live = report.arms[0] if report.arms else None
        error_rate = live.error_rate if live is not None and live.error_rate == live.error_rate else 0.0
        return needed(policy.rollout, live.accuracy if live is not None else None, error_rate)

    def _reference(self, policy: LoopPolicy) -> pd.DataFrame:
        reference: pd.DataFrame = self.datasets.read(self.datasets.get(policy.reference_dataset)).to_pandas()
        if policy.target not in reference.columns:
            raise InvalidInput(
                f"reference dataset {policy.reference_dataset} has no column {policy.target!r}"
            )
        return reference

    def _production(self, policy: LoopPolicy, reference: pd.DataFrame) -> pd.DataFrame:
        """The labelled production rows to learn from: the policy's window, doubled after
        each rollback in a row (up to 8 times: a longer window for a model that did not hold)."""
        from loopline.specs.monitor import WindowSpec

        rows = policy.window_rows * 2 ** min(self._rollbacks_in_a_row(policy.deployment), 3)
        labelled: pd.DataFrame = self._labelled(policy, reference.head(0), WindowSpec(rows=rows))
        return labelled

    def _split(
        self, policy: LoopPolicy, reference: pd.DataFrame, production: pd.DataFrame
    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
        """Reference rows plus the older labelled production rows to train on; the newest
        labelled production rows (or, without enough of them, part of the reference) to test on."""
        import pandas as pd

        held = int(len(production) * policy.holdout_share)
        if held >= 20:
            train_part, holdout = (
                production.iloc[: len(production) - held],
                production.iloc[len(production) - held :],
            )
        else:  # too few labels yet: test on a slice of the reference the new model will not see
            if len(reference) < 20:
                raise InvalidInput(
                    f"reference dataset {policy.reference_dataset} is too small to hold rows out"
                )
            cut = max(1, int(len(reference) * policy.holdout_share))
            train_part, holdout = production, reference.iloc[-cut:]
            reference = reference.iloc[:-cut]
        training = pd.concat([reference, train_part], ignore_index=True)
        counts = {"reference": len(reference), "production_train": len(train_part), "holdout": len(holdout)}
        return training, holdout.reset_index(drop=True), counts

    def _quarantine(self, policy: LoopPolicy, rows: pd.DataFrame, report: ValidationReport) -> LoopEvent:
        """Store a batch that failed the contract, flagged, so that it is kept for a person
        to look at and never trained on; tell the notifiers."""
        failed = "; ".join(
            f"{f.check} {f.column or ''}: {f.detail}".replace("  ", " ") for f in report.failures[:5]
        )
        stored, _ = self.datasets.register(
            f"{policy.deployment}-quarantine", rows,
            description=f"labelled production rows of {policy.deployment} that failed its contract: {failed}",
            tags={"quarantined": "true", "failed_checks": str(len(report.failures))},
        )  # fmt: skip
        then = (
            "the loop stops until the data is fixed (on_invalid_data: stop)"
            if policy.on_invalid_data == "stop"
            else "retraining on the last good data instead (on_invalid_data: last_good)"
        )
        message = (
            f"{len(rows)} labelled production rows failed the data contract ({failed}); stored as "
            f"{stored.uri}, flagged quarantined and left out of training; {then}"
        )
        return self._escalate(policy, "quarantined", message, dataset=stored.uri, validation=report.to_dict())

    def _last_good(self, policy: LoopPolicy, reference: pd.DataFrame) -> pd.DataFrame:
        """The newest training data of this loop (reference and production rows that passed),
        or the reference when there is none."""
        from loopline.core.errors import NotFound

        try:
            last = self.datasets.get(f"{policy.deployment}-training")
        except NotFound:
            return reference
        data: pd.DataFrame = self.datasets.read(last).to_pandas()
        return data

    def _rollbacks_in_a_row(self, deployment: str) -> int:
        """Challengers rolled back since the last promotion (or ever)."""
        count = 0
        for event in reversed(self._store.loops.events(deployment)):
            if event.kind in ("promoted", "awaiting_approval"):
                break
            count += event.kind == "rolled_back"
        return count

    def _labelled(self, policy: LoopPolicy, reference: pd.DataFrame, span: WindowSpec) -> pd.DataFrame:
        """The labelled production rows of `span` as rows of the reference (features and
        target, the target in the reference's type), oldest first."""
        import pandas as pd

        from loopline.predictions.log import labels_as
        from loopline.predictions.window import read_window

        features = [c for c in reference.columns if c != policy.target]
        revisions = self.deployments.revisions(policy.deployment)
        shadows = TrafficPolicy.shadow_arms(revisions, self.deployments.policy(policy.deployment))
        window = read_window(self._tables, policy.deployment, span, now_ms(), shadows)
        if window.rows.empty or not set(features) <= set(window.rows.columns):
            return pd.DataFrame(columns=reference.columns)
        labelled = window.rows[window.rows["label"].notna()]
        return (
            labelled[features]
            .assign(**{policy.target: labels_as(labelled["label"], reference[policy.target].dtype)})
            .reset_index(drop=True)
        )

    # advance: decide the canary ---------------------------------------------------------------

    def advance(self, deployment: str) -> LoopEvent | None:
        """Judge a canary (or shadow) on its evidence so far: promote it, roll it back, or
        keep watching (None). At `max_minutes`, `on_inconclusive` decides what is still open."""
        from loopline.automation.canary import Outcome

        self._access.operations(Role.MAINTAINER)
        loop = self.get(deployment)
        if loop.state is not LoopState.CANARY or loop.challenger is None:
            return None
        policy = self._policy(loop)
        rollout = policy.rollout
        traffic = self.deployments.policy(deployment)
        if traffic.kind != rollout.mode:  # someone changed the traffic
            return self._fail(loop, LoopState.CANARY, f"the {rollout.mode} was ended by a change of traffic")
        now = now_ms()
        judgement = self._judge(policy, loop, traffic)
        outcome = judgement.outcome(rollout)
        elapsed_min = (now - (loop.stage_started_at or now)) / 60_000
        uri = f"models:/{policy.model}/{loop.challenger}"
        reason = "; ".join(c.describe() for c in judgement.harmful)
        if outcome is Outcome.WATCH and elapsed_min >= rollout.max_minutes:
            late = f"after {elapsed_min:.0f} min ({judgement.requests} requests, {judgement.labels} labels)"
            missing = (
                f"{', '.join(c.metric for c in judgement.undecided)} not shown non-inferior"
                if judgement.undecided
                else f"only {judgement.requests} of {rollout.min_requests} requests"
            )
            if rollout.on_inconclusive == "hold":
                return self._hold(policy, f"{uri} is still undecided {late}: {missing}", judgement)
            if rollout.on_inconclusive == "promote":  # one last look, at fixed-sample intervals
                judgement = self._judge(policy, loop, traffic, final=True)
                if not judgement.harmful and not judgement.undecided:
                    outcome = Outcome.PROMOTE
                elif judgement.harmful:
                    missing = "; ".join(c.describe() for c in judgement.harmful)
            if outcome is Outcome.WATCH:
                outcome = Outcome.ROLLBACK
                reason = f"undecided {late}: {missing} (on_inconclusive: {rollout.on_inconclusive})"
        if outcome is Outcome.WATCH:
            return None
        if not self._store.loops.move(deployment, LoopState.CANARY, LoopState.DECIDING, now):
            return None  # another worker is deciding
        evidence = {"judgement": judgement.to_dict(), "challenger_requests": judgement.requests}
        try:
            if outcome is Outcome.ROLLBACK:
                self._serve_champion(policy, f"rollback of {uri}: {reason}")
                then, ask = self._after_rollback(policy, judgement)
                message = f"{uri} rolled back: {reason}; next: {then}"
                event = self._event(deployment, "rolled_back", message, next=then, **evidence)
                if ask:
                    self._escalate(policy, "escalated", f"{uri} rolled back; next: {then}")
            else:
                event = self._promote(policy, loop.challenger, uri, judgement, evidence)
        except Exception as exc:
            return self._fail(loop, LoopState.DECIDING, f"deciding {uri} failed: {type(exc).__name__}: {exc}")
        self._finish(policy, LoopState.DECIDING)
        return event

    def _judge(
        self, policy: LoopPolicy, loop: Loop, traffic: TrafficPolicy, *, final: bool = False
    ) -> Judgement:
        from loopline.automation.canary import judge
        from loopline.predictions.reports import arm_samples

        samples = arm_samples(
            self._tables, policy.deployment, traffic, loop.stage_started_at,
            warmup=policy.rollout.warmup_requests,
        )  # fmt: skip
        champion = samples[traffic.answering_arms[0].name]
        challenger = samples[(traffic.shadow_arm or traffic.arms[-1]).name]
        return judge(champion, challenger, policy.rollout, final=final)

    def _after_rollback(self, policy: LoopPolicy, judgement: Judgement) -> tuple[str, bool]:
        """What the loop does after this rollback, and whether a person must be asked; never
        a storm of retries. A person looks once `max_rollbacks` challengers in a row failed,
        or when the challenger itself broke (errors, latency: more data will not fix it); a
        worse model retrains on a longer window; an undecided one waits for more labels."""
        rollbacks = self._rollbacks_in_a_row(policy.deployment) + 1
        harmful = {c.metric for c in judgement.harmful}
        later = f"after the cool-down ({policy.cooldown_minutes:g} min)"
        if rollbacks >= policy.max_rollbacks:
            return (
                f"a person: {rollbacks} challengers in a row were rolled back, so the loop retrains no more "
                "until someone does (loopline loop start --force)"
            ), True
        if harmful & {"error_rate", "latency_ms"}:
            return (
                "a person: the challenger itself failed (errors or latency), which more data will not fix",
                True,
            )
        if harmful:
            rows = policy.window_rows * 2 ** min(rollbacks, 3)
            return f"retrain on a longer window ({rows} production rows) {later}", False
        return f"wait for more labels, then retrain {later}", False

    def _hold(self, policy: LoopPolicy, message: str, judgement: Judgement) -> LoopEvent | None:
        """Keep the challenger at its share and ask a person, once: the checks go on every tick."""
        last = self._store.loops.events(policy.deployment, limit=1)
        if last and last[-1].kind == "held":
            return None
        message += "; it keeps its share (on_inconclusive: hold) until the evidence decides or a person does"
        return self._escalate(policy, "held", message, judgement=judgement.to_dict())

    def _escalate(self, policy: LoopPolicy, kind: str, message: str, **evidence: Any) -> LoopEvent:
        """Record `message` and send it to the policy's notifiers (a person must act)."""
        from loopline.monitoring.notify import notify

        sent = notify(policy.notify, {"deployment": policy.deployment, "kind": kind, "message": message})
        return self._event(policy.deployment, kind, message, notified=sent, **evidence)

    def _promote(
        self, policy: LoopPolicy, version: int, uri: str, judgement: Judgement, evidence: dict[str, Any]
    ) -> LoopEvent:
        """Move @champion to the winner, unless it is protected: then the loop stops at a
        request awaiting a second person's approval, and the champion keeps all traffic."""
        rollout = policy.rollout
        try:
            self.registry.set_alias(
                policy.model,
                "champion",
                version,
                reason=f"won its {rollout.mode} (retraining loop; the evidence is on its timeline)",
            )
        except ApprovalRequired as waiting:
            self._serve_champion(policy, f"{uri} won its {rollout.mode}; its promotion awaits approval")
            message = f"{uri} won its {rollout.mode} ({judgement.summary()}); {waiting}"
            return self._event(
                policy.deployment, "awaiting_approval", message, request=waiting.request_id, **evidence
            )
        self._serve_champion(policy, f"{uri} promoted after its {rollout.mode}")
        message = (
            f"{uri} promoted to @champion after {judgement.requests} requests and {judgement.labels} labels: "
            f"{judgement.summary()}"
        )
        return self._event(policy.deployment, "promoted", message, **evidence)

    def _serve_champion(self, policy: LoopPolicy, reason: str) -> None:

        self.deployments.set_traffic(
            policy.deployment, TrafficPolicy.single(f"models:/{policy.model}@champion"), reason
        )

    def _finish(self, policy: LoopPolicy, from_state: LoopState) -> None:
        now = now_ms()
        cooldown = now + int(policy.cooldown_minutes * 60_000)
        if not self._store.loops.move(
            policy.deployment, from_state, LoopState.IDLE, now, challenger=None, stage_started_at=None,
            cooldown_until=cooldown,
        ):  # fmt: skip
            raise Conflict(f"the loop of {policy.deployment} left {from_state} unexpectedly")

    # guard: the champion between retrainings ---------------------------------------------------

    def guard(self, deployment: str) -> LoopEvent | None:
        """Check the live champion against the policy's `guard` bounds (no challenger out).
        Past one, roll @champion back to the previous champion if that one does better on
        the same labelled requests; otherwise escalate to a person. At most one action per
        `every_minutes`; None when there is nothing to do."""
        from loopline.automation.guard import breaches
        from loopline.predictions.reports import arm_samples

        self._access.operations(Role.MAINTAINER)
        loop = self.get(deployment)
        policy = self._policy(loop)
        guard = policy.guard
        traffic = self.deployments.policy(deployment)
        if guard is None or loop.state is not LoopState.IDLE or traffic.kind != "single":
            return None
        now = now_ms()
        recent = self._store.loops.events(deployment, limit=50)
        if any(e.kind in GUARD_ACTIONS and now - e.at < guard.every_minutes * 60_000 for e in recent):
            return None
        champion = self.registry.resolve(f"models:/{policy.model}@champion").version
        moves = self.registry.alias_history(policy.model, "champion")
        current = next((m for m in reversed(moves) if m.to_version == champion), None)
        since = max(now - int(guard.window_minutes * 60_000), current.at if current else 0)
        samples = arm_samples(self._tables, deployment, traffic, since)[traffic.arms[0].name]
        reasons = breaches(samples, guard, self._estimated_accuracy(deployment, since))
        if not reasons:
            return None
        problem = f"champion version {champion} of {policy.model}: " + "; ".join(reasons)
        previous = current.from_version if current is not None else None
        if previous is None:
            return self._escalate(
                policy, "escalated", f"{problem}; there is no earlier champion to go back to"
            )
        return self._fall_back(policy, champion, previous, since, problem)

    def _fall_back(
        self, policy: LoopPolicy, champion: int, previous: int, since: int, problem: str
    ) -> LoopEvent:
        """Go back to `previous` if it does better than `champion` on the labelled requests
        since `since`; escalate otherwise."""
        import math

        from loopline.specs.monitor import WindowSpec

        guard = policy.guard
        assert guard is not None
        reference = self.datasets.read(self.datasets.get(policy.reference_dataset)).to_pandas().head(0)
        hours = max((now_ms() - since) / 3_600_000, 1e-6)
        rows = self._labelled(policy, reference, WindowSpec(hours=hours))
        if len(rows) < guard.min_labels:
            message = (
                f"{problem}; too few labels ({len(rows)}) to tell whether version {previous} does better"
            )
            return self._escalate(policy, "escalated", message)
        scores = {}
        for version in (champion, previous):
            evaluation = self.promotion.evaluate(
                f"models:/{policy.model}/{version}",
                rows,
                policy.target,
                dataset_name=f"{policy.deployment}-guard",
            )
            higher_is_better = "accuracy" in evaluation.metrics
            metric = "accuracy" if higher_is_better else "mae"
            value = evaluation.metrics.get(metric, math.nan)
            scores[version] = value if higher_is_better else -value
        evidence = {
            "metric": metric,
            "labels": len(rows),
            "scores": {str(v): abs(x) for v, x in scores.items()},
        }
        compared = (
            f"{metric} {abs(scores[previous]):.3f} vs {abs(scores[champion]):.3f} "
            f"on {len(rows)} labelled requests"
        )
        if not scores[previous] > scores[champion]:
            return self._escalate(
                policy, "escalated", f"{problem}; version {previous} does no better ({compared})", **evidence
            )
        message = f"{problem}; rolled back to version {previous}, which does better ({compared})"
        try:
            self.registry.set_alias(policy.model, "champion", previous, reason=f"guard: {message}")
        except ApprovalRequired as waiting:
            return self._escalate(
                policy, "escalated", f"{problem}; going back to version {previous} {waiting}"
            )
        return self._escalate(policy, "guarded", message, **evidence)

    def _estimated_accuracy(self, deployment: str, since: int) -> float | None:
        """The newest `est.accuracy` a monitor of the deployment measured since `since`."""
        newest: tuple[int, float] | None = None
        for monitor in self._store.monitors.list_all():
            if monitor.deployment != deployment:
                continue
            for run in self._store.monitors.runs(monitor.name, limit=1):
                value = run.values.get("est.accuracy")
                if value is not None and run.at >= since and (newest is None or run.at > newest[0]):
                    newest = (run.at, float(value))
        return newest[1] if newest else None

    def advance_all(self) -> list[LoopEvent]:
        """Decide every canary that has seen enough, and reset loops abandoned mid-step (their
        worker died): one broken loop never stops the others."""
        events = []
        for loop in self._store.loops.list_all():
            try:
                stale = ABANDONED_AFTER_MS.get(loop.state)
                if stale is not None and now_ms() - loop.updated_at > stale:
                    events.append(self.reset(loop.deployment, "no worker finished it in time"))
                elif (event := self.advance(loop.deployment) or self.guard(loop.deployment)) is not None:
                    events.append(event)
            except Exception:
                log.exception("the retraining loop of %s could not advance", loop.deployment)
        return events
