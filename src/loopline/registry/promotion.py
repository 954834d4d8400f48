"""Promotion: move an alias to a version only if the version passes the policy's gates.

With evaluation data, both the candidate and the current holder are evaluated on it
(the evaluations are stored) and the gates compare them row by row. A refused promotion
raises with the full report; a forced one needs a reason, and both are recorded with
the alias move.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from loopline.core.errors import InvalidInput
from loopline.core.names import alias_name
from loopline.core.promotion import PromotionRefused, PromotionReport
from loopline.core.registry import Evaluation
from loopline.core.uris import ModelRef
from loopline.registry.card import card_html, model_card
from loopline.registry.evaluation import EvaluationService
from loopline.registry.gates import GateContext
from loopline.registry.policy import DEFAULT_POLICY, Policy
from loopline.registry.service import RegistryService
from loopline.services import Lineage, Tracking
from loopline.services.promotion import PolicyDocument
from loopline.store import MetadataStore


class PromotionService:
    def __init__(
        self,
        store: MetadataStore,
        *,
        registry: RegistryService,  # it moves aliases with the gates' report, as only promotion may
        evaluations: EvaluationService,
        tracking: Tracking,
        lineage: Lineage,
    ) -> None:
        self._store = store
        self.principal = registry.principal
        self.registry = registry
        self._evaluations = evaluations
        self._tracking = tracking
        self._lineage = lineage

    def evaluations(self, name: str, version: int) -> list[Evaluation]:
        """Every evaluation stored with a version, oldest first."""
        return self._evaluations.list(name, version)

    def evaluation_plot(self, name: str, version: int, evaluation_id: int, plot: str) -> bytes:
        """The PNG of one plot of a stored evaluation."""
        return self._evaluations.plot(self._evaluations.get(name, version, evaluation_id), plot)

    def model_card(self, name: str, version: int, *, html: bool = False) -> str:
        """The model card of a version, as Markdown (or HTML, with the evaluations' plots)."""
        markdown = model_card(
            self.registry, self._evaluations, self._tracking, self._lineage, name, version, plots=html
        )
        return card_html(markdown, f"{name} version {version}") if html else markdown

    def evaluate(
        self,
        uri: str,
        data: pd.DataFrame,
        target: str,
        *,
        task: str | None = None,
        slices: Sequence[str] = (),
        dataset_name: str = "evaluation",
        trust: bool = False,
        trusted_types: Sequence[str] = (),
    ) -> Evaluation:
        """Evaluate the version at `uri` on `data` and store the result with it."""
        return self._evaluations.evaluate(
            uri, data, target, task=task, slices=slices, dataset_name=dataset_name, trust=trust,
            trusted_types=trusted_types,
        )  # fmt: skip

    def promote(
        self,
        name: str,
        version: int,
        alias: str = "champion",
        *,
        policy: PolicyDocument | Mapping[str, Any] | None = None,
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
            ctx.validations = self._store.runs.validations(candidate.run_id)
        if data is not None and target is not None:
            self._evaluate_both(ctx, data, target, task)
        report = PromotionReport(
            model.name,
            version,
            alias,
            None if current is None else current.version,
            [gate.check(ctx) for gate in _policy(policy).gates],
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
        evaluation, ctx.candidate_predictions = self._evaluations.evaluate_loaded(
            ctx.candidate, ctx.candidate_model, data, target, task=task, dataset_name="promotion"
        )
        ctx.task = evaluation.task
        ctx.candidate_evaluation = {"metrics": evaluation.metrics, "latency": evaluation.latency}
        if ctx.current is not None and ctx.current_model is not None:
            held, ctx.current_predictions = self._evaluations.evaluate_loaded(
                ctx.current, ctx.current_model, data, target, task=ctx.task, dataset_name="promotion"
            )
            ctx.current_evaluation = {"metrics": held.metrics, "latency": held.latency}


def _policy(policy: PolicyDocument | Mapping[str, Any] | None) -> Policy:
    """The policy given (gates of Python code included), its document parsed, or the default."""
    if policy is None:
        return DEFAULT_POLICY
    if isinstance(policy, Policy):
        return policy
    return Policy.from_dict(policy if isinstance(policy, Mapping) else policy.to_dict())
