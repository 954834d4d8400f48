"""Promotion: move an alias to a version only if the version passes the policy's gates.

With evaluation data, both the candidate and the current holder are evaluated on it
(the evaluations are stored) and the gates compare them row by row. A refused promotion
raises with the full report; a forced one needs a reason, and both are recorded with
the alias move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loopline.artifacts import BlobStore
from loopline.core.entities import Principal
from loopline.core.errors import Conflict, InvalidInput
from loopline.registry.evaluation import EvaluationService
from loopline.registry.gates import GateContext, GateResult
from loopline.registry.names import alias_name
from loopline.registry.policy import DEFAULT_POLICY, Policy
from loopline.registry.service import RegistryService
from loopline.registry.uris import ModelRef
from loopline.store import MetadataStore


@dataclass(frozen=True)
class PromotionReport:
    model: str
    version: int
    alias: str
    current_version: int | None
    results: list[GateResult] = field(default_factory=list)
    forced: bool = False
    reason: str = ""

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "current_version": self.current_version,
            "passed": self.passed,
            "forced": self.forced,
            "reason": self.reason,
            "gates": [r.to_dict() for r in self.results],
        }

    def summary(self) -> str:
        verdict = "passed" if self.passed else ("forced past failing gates" if self.forced else "refused")
        lines = [f"promotion of {self.model} version {self.version} to @{self.alias}: {verdict}"]
        lines += [f"  [{'pass' if r.passed else 'FAIL'}] {r.gate}: {r.message}" for r in self.results]
        return "\n".join(lines)


class PromotionRefused(Conflict):
    def __init__(self, report: PromotionReport) -> None:
        self.report = report
        super().__init__(report.summary() + "\n(--force with a --reason promotes anyway, on the record)")


class PromotionService:
    def __init__(self, store: MetadataStore, blobs: BlobStore, principal: Principal) -> None:
        self._store = store
        self.registry = RegistryService(store, blobs, principal)
        self.evaluations = EvaluationService(store, blobs, principal)

    def promote(
        self,
        name: str,
        version: int,
        alias: str = "champion",
        *,
        policy: Policy | None = None,
        data: pd.DataFrame | None = None,
        target: str | None = None,
        task: str | None = None,
        force_reason: str | None = None,
        trust: bool = False,
        trusted_types: Sequence[str] = (),
        baseline: str | None = None,
    ) -> PromotionReport:
        """Run the gates and, if they pass (or `force_reason` is given), move the alias.
        Comparisons are against the holder of `alias`, or of the `baseline` alias if given
        (a challenger is measured against the champion)."""
        if force_reason is not None and not force_reason.strip():
            raise InvalidInput("forcing a promotion needs a reason, which is recorded")
        if (data is None) != (target is None):
            raise InvalidInput("evaluation data and its target column come together")
        alias = alias_name(alias)
        model = self.registry.get_model(name)
        candidate = self.registry.get_version(model.name, version)
        held = model.aliases.get(alias_name(baseline) if baseline else alias)
        current = None if held is None or held == version else self.registry.get_version(model.name, held)

        def load(ref: ModelRef) -> Any:
            return self.registry.load(ref, trust=trust, trusted_types=trusted_types)

        ctx = GateContext(
            candidate=candidate,
            current=current,
            candidate_model=load(ModelRef(model.name, version=version)),
            current_model=None if current is None else load(ModelRef(model.name, version=current.version)),
        )
        if candidate.run_id is not None:
            ctx.run_tags = self._store.runs.get_run(candidate.run_id).tags
        if data is not None and target is not None:
            self._evaluate_both(ctx, data, target, task)
        report = PromotionReport(
            model.name,
            version,
            alias,
            None if current is None else current.version,
            [gate.check(ctx) for gate in (policy or DEFAULT_POLICY).gates],
            forced=force_reason is not None,
            reason=force_reason or "",
        )
        if not report.passed and force_reason is None:
            raise PromotionRefused(report)
        reason = force_reason or f"passed {len(report.results)} gates"
        self.registry.set_alias(
            model.name, alias, version, reason=reason, forced=not report.passed, report=report.to_dict()
        )
        return report

    def _evaluate_both(self, ctx: GateContext, data: pd.DataFrame, target: str, task: str | None) -> None:
        ctx.data, ctx.target = data, target
        evaluation, ctx.candidate_predictions = self.evaluations.evaluate_loaded(
            ctx.candidate, ctx.candidate_model, data, target, task=task, dataset_name="promotion"
        )
        ctx.task = evaluation.task
        ctx.candidate_evaluation = {"metrics": evaluation.metrics, "latency": evaluation.latency}
        if ctx.current is not None and ctx.current_model is not None:
            held, ctx.current_predictions = self.evaluations.evaluate_loaded(
                ctx.current, ctx.current_model, data, target, task=ctx.task, dataset_name="promotion"
            )
            ctx.current_evaluation = {"metrics": held.metrics, "latency": held.latency}
