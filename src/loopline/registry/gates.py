"""Promotion gates: each checks one thing about a candidate model version and reports
its evidence. A promotion passes only when every gate in its policy passes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from loopline.core.datasets import DataValidation
from loopline.core.promotion import GateResult
from loopline.core.registry import ModelVersion
from loopline.models import LoadedModel, Signature
from loopline.registry.evaluation import Predictions

LOWER_IS_BETTER = frozenset({"log_loss", "calibration_error", "rmse", "mae"})


@dataclass
class GateContext:
    """What gates may look at. Evaluations and predictions exist when data was given."""

    candidate: ModelVersion
    current: ModelVersion | None
    candidate_model: LoadedModel
    current_model: LoadedModel | None
    data: pd.DataFrame | None = None
    target: str | None = None
    task: str | None = None
    candidate_evaluation: dict[str, Any] | None = None
    current_evaluation: dict[str, Any] | None = None
    candidate_predictions: Predictions | None = None
    current_predictions: Predictions | None = None
    validations: list[DataValidation] = field(default_factory=list)


class Gate(Protocol):
    kind: ClassVar[str]

    def check(self, ctx: GateContext) -> GateResult: ...


def _needs_data(kind: str) -> GateResult:
    return GateResult(kind, False, "needs evaluation data: pass data= and target= to the promotion")


@dataclass(frozen=True)
class MetricThreshold:
    """The candidate's metric is at least `min` and/or at most `max`."""

    kind: ClassVar[str] = "metric_threshold"
    metric: str
    min: float | None = None
    max: float | None = None

    def check(self, ctx: GateContext) -> GateResult:
        source = "evaluation data"
        values = ctx.candidate_evaluation["metrics"] if ctx.candidate_evaluation else None
        if values is None:
            values, source = ctx.candidate.metrics, "metrics recorded with the version"
        value = values.get(self.metric)
        evidence = {"metric": self.metric, "value": value, "min": self.min, "max": self.max, "source": source}
        if value is None:
            return GateResult(self.kind, False, f"{self.metric} is not known for the candidate", evidence)
        low_ok = self.min is None or value >= self.min
        high_ok = self.max is None or value <= self.max
        bounds = " and ".join(
            b
            for b in (self.min is not None and f">= {self.min}", self.max is not None and f"<= {self.max}")
            if b
        )
        return GateResult(
            self.kind, low_ok and high_ok, f"{self.metric} = {value:.4g} (needs {bounds})", evidence
        )


def _per_row_loss(metric: str, p: Predictions) -> np.ndarray | None:
    """Per-row values whose mean is the metric, where one exists (fast bootstrap)."""
    values: np.ndarray | None = None
    if metric == "accuracy":
        values = (p.predicted == p.truth).astype(float)
    elif metric == "log_loss" and p.proba is not None and p.classes is not None:
        index = {c: i for i, c in enumerate(p.classes)}
        rows = np.array([index.get(t, -1) for t in p.truth])
        values = -np.log(np.clip(p.proba[np.arange(len(rows)), rows], 1e-15, 1))
    elif metric in ("rmse", "mae"):
        error = p.truth.astype(float) - p.predicted.astype(float)
        values = error**2 if metric == "rmse" else np.abs(error)
    return values


def _weighted_metric(metric: str, p: Predictions) -> Callable[[np.ndarray], float] | None:
    """The metric of a resample given as row weights (multiplicities), in O(rows), for
    binary ROC AUC, precision, recall and F1; None for metrics without such a form."""
    if p.classes is None or len(p.classes) != 2:
        return None
    positive = p.truth == p.classes[1]
    if metric == "roc_auc" and p.proba is not None:
        scores, inverse = np.unique(p.proba[:, 1], return_inverse=True)
        del scores

        def auc(w: np.ndarray) -> float:
            pos = np.bincount(inverse, weights=w * positive)
            neg = np.bincount(inverse, weights=w * ~positive)
            below = np.cumsum(neg) - neg
            pairs = pos.sum() * neg.sum()
            return float((pos * (below + 0.5 * neg)).sum() / pairs) if pairs else float("nan")

        return auc
    if metric in ("precision", "recall", "f1"):
        said = p.predicted == p.classes[1]

        def confusion_metric(w: np.ndarray) -> float:
            tp, fp, fn = (
                (w * (said & positive)).sum(),
                (w * (said & ~positive)).sum(),
                (w * (~said & positive)).sum(),
            )
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            if metric == "precision":
                return float(precision)
            if metric == "recall":
                return float(recall)
            return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0

        return confusion_metric
    return None


def _metric_on(metric: str, p: Predictions, task: str, rows: np.ndarray) -> float:
    from loopline.models.metrics import task_metrics

    proba = None if p.proba is None else p.proba[rows]
    return task_metrics(task, p.truth[rows], p.predicted[rows], proba, p.classes)[metric]


@dataclass(frozen=True)
class BetterThanCurrent:
    """The candidate beats the alias holder on the same data by `margin`, significantly:
    McNemar's exact test for accuracy, a paired bootstrap otherwise (or if asked)."""

    kind: ClassVar[str] = "better_than_current"
    metric: str = "accuracy"
    margin: float = 0.0
    test: str = "auto"  # auto | mcnemar | bootstrap
    alpha: float = 0.05
    resamples: int = 1000
    seed: int = 0

    def check(self, ctx: GateContext) -> GateResult:
        if ctx.current is None:
            return GateResult(self.kind, True, "no version holds the alias yet: nothing to beat")
        new, old = ctx.candidate_predictions, ctx.current_predictions
        if new is None or old is None or ctx.task is None:
            return _needs_data(self.kind)
        everything = np.arange(len(new.truth))
        new_value = _metric_on(self.metric, new, ctx.task, everything)
        old_value = _metric_on(self.metric, old, ctx.task, everything)
        sign = -1.0 if self.metric in LOWER_IS_BETTER else 1.0
        gain = sign * (new_value - old_value) + 0.0  # + 0.0: no "-0" in reports
        test = self.test if self.test != "auto" else ("mcnemar" if self.metric == "accuracy" else "bootstrap")
        p_value, detail = (
            self._mcnemar(new, old) if test == "mcnemar" else self._bootstrap(new, old, ctx.task, sign)
        )
        passed = gain > self.margin and p_value < self.alpha
        evidence = {
            "metric": self.metric,
            "candidate": new_value,
            "current": old_value,
            "current_version": ctx.current.version,
            "improvement": gain,
            "margin": self.margin,
            "test": test,
            "p_value": p_value,
            "alpha": self.alpha,
            **detail,
        }
        message = (
            f"{self.metric} {new_value:.4g} vs {old_value:.4g} (version {ctx.current.version}): "
            f"improvement {gain:+.4g}, needs > {self.margin}; {test} p = {p_value:.3g}, needs < {self.alpha}"
        )
        return GateResult(self.kind, passed, message, evidence)

    def _mcnemar(self, new: Predictions, old: Predictions) -> tuple[float, dict[str, Any]]:
        from scipy.stats import binomtest

        new_right = new.predicted == new.truth
        old_right = old.predicted == old.truth
        wins = int((new_right & ~old_right).sum())
        losses = int((~new_right & old_right).sum())
        p_value = (
            1.0
            if wins + losses == 0
            else float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)
        )
        return p_value, {"candidate_only_right": wins, "current_only_right": losses}

    def _bootstrap(
        self, new: Predictions, old: Predictions, task: str, sign: float
    ) -> tuple[float, dict[str, Any]]:
        rng = np.random.default_rng(self.seed)
        n = len(new.truth)
        samples = rng.integers(0, n, size=(self.resamples, n))
        new_rows, old_rows = _per_row_loss(self.metric, new), _per_row_loss(self.metric, old)
        new_weighted, old_weighted = _weighted_metric(self.metric, new), _weighted_metric(self.metric, old)
        if new_rows is not None and old_rows is not None:
            new_means, old_means = new_rows[samples].mean(axis=1), old_rows[samples].mean(axis=1)
            if self.metric == "rmse":
                new_means, old_means = np.sqrt(new_means), np.sqrt(old_means)
            gains = sign * (new_means - old_means)
        elif new_weighted is not None and old_weighted is not None:
            weights = [np.bincount(s, minlength=n).astype(float) for s in samples]
            gains = np.array([sign * (new_weighted(w) - old_weighted(w)) for w in weights])
        else:
            gains = np.array(
                [
                    sign * (_metric_on(self.metric, new, task, s) - _metric_on(self.metric, old, task, s))
                    for s in samples
                ]
            )
        p_value = float((gains <= self.margin).mean())
        low, high = np.percentile(gains, [2.5, 97.5])
        return p_value, {"resamples": self.resamples, "improvement_95ci": [float(low), float(high)]}


@dataclass(frozen=True)
class SignatureCompatible:
    """Whatever the alias holder accepts, the candidate accepts too, and it answers alike."""

    kind: ClassVar[str] = "signature_compatible"

    def check(self, ctx: GateContext) -> GateResult:
        if ctx.current is None:
            return GateResult(
                self.kind, True, "no version holds the alias yet: nothing to stay compatible with"
            )
        problems = signature_differences(
            ctx.current_model.signature if ctx.current_model else None, ctx.candidate_model.signature
        )
        message = "compatible" if not problems else "; ".join(problems)
        return GateResult(
            self.kind, not problems, message, {"problems": problems, "current_version": ctx.current.version}
        )


def signature_differences(current: Signature | None, candidate: Signature | None) -> list[str]:
    if current is None or candidate is None:
        return (
            [] if current is None and candidate is None else ["only one of the two versions has a signature"]
        )
    if not isinstance(current.inputs, tuple) or not isinstance(candidate.inputs, tuple):
        same = current.inputs == candidate.inputs
        return [] if same else [f"tensor input {candidate.inputs} differs from {current.inputs}"]
    offered = {c.name: c for c in current.inputs}
    problems = []
    for column in candidate.inputs:
        given = offered.get(column.name)
        if given is None:
            problems.append(f"the candidate needs column {column.name!r}, which callers do not send today")
        elif given.type != column.type:
            problems.append(
                f"column {column.name!r} is {given.type} today but the candidate wants {column.type}"
            )
        elif given.nullable and not column.nullable:
            problems.append(
                f"column {column.name!r} may be missing today but the candidate refuses missing values"
            )
    if current.outputs != candidate.outputs:
        problems.append("the output schema changed")
    return problems


@dataclass(frozen=True)
class LatencyBudget:
    """The candidate's single-row p95 latency stays under the budget."""

    kind: ClassVar[str] = "latency"
    p95_ms: float

    def check(self, ctx: GateContext) -> GateResult:
        if ctx.candidate_evaluation is None:
            return _needs_data(self.kind)
        measured = ctx.candidate_evaluation["latency"]["row_p95_ms"]
        message = f"single-row p95 {measured:.2f} ms (budget {self.p95_ms} ms)"
        return GateResult(
            self.kind, measured <= self.p95_ms, message, {"row_p95_ms": measured, "budget_ms": self.p95_ms}
        )


@dataclass(frozen=True)
class DataValidationPassed:
    """The run that trained the candidate validated its data, and every validation it
    recorded passed. The evidence is the validation service's records, never a run tag."""

    kind: ClassVar[str] = "data_validation"

    def check(self, ctx: GateContext) -> GateResult:
        if ctx.candidate.run_id is None:
            return GateResult(self.kind, False, "the candidate has no training run to show validated data")
        evidence = {
            "run_id": ctx.candidate.run_id,
            "validations": [{"id": v.id, "passed": v.passed, "source": v.source} for v in ctx.validations],
        }
        failed = [v for v in ctx.validations if not v.passed]
        if not ctx.validations:
            return GateResult(
                self.kind, False, "the training run recorded no validation of its data", evidence
            )
        if failed:
            message = f"{len(failed)} of {len(ctx.validations)} validations of the training data failed"
            return GateResult(self.kind, False, f"{message} (first: {failed[0].source})", evidence)
        return GateResult(self.kind, True, "the training data passed validation", evidence)


def _group_rates(metric: str, p: Predictions, mask: np.ndarray) -> float:
    if metric == "accuracy":
        return float((p.predicted[mask] == p.truth[mask]).mean())
    positive = p.classes[-1] if p.classes else 1
    if metric == "selection_rate":
        return float((p.predicted[mask] == positive).mean())
    actual = mask & (p.truth == positive)  # true positive rate
    return float((p.predicted[actual] == positive).mean()) if actual.any() else float("nan")


@dataclass(frozen=True)
class Parity:
    """A metric (accuracy, selection_rate or true_positive_rate) differs across the groups
    of a sensitive attribute by at most `max_gap`."""

    kind: ClassVar[str] = "parity"
    attribute: str
    metric: str = "accuracy"
    max_gap: float = 0.1
    METRICS: ClassVar[tuple[str, ...]] = ("accuracy", "selection_rate", "true_positive_rate")

    def check(self, ctx: GateContext) -> GateResult:
        p = ctx.candidate_predictions
        if p is None or ctx.data is None:
            return _needs_data(self.kind)
        if self.attribute not in ctx.data.columns:
            return GateResult(self.kind, False, f"the evaluation data has no column {self.attribute!r}")
        column = ctx.data[self.attribute].to_numpy()
        groups = {str(g): _group_rates(self.metric, p, column == g) for g in pd.unique(column)}
        known = [v for v in groups.values() if v == v]
        gap = max(known) - min(known) if known else 0.0
        message = f"{self.metric} across {self.attribute} differs by {gap:.3f} (at most {self.max_gap})"
        return GateResult(self.kind, gap <= self.max_gap, message, {"groups": groups, "gap": gap})


GATE_KINDS: dict[str, Callable[..., Gate]] = {
    cls.kind: cls
    for cls in (
        MetricThreshold,
        BetterThanCurrent,
        SignatureCompatible,
        LatencyBudget,
        DataValidationPassed,
        Parity,
    )
}
