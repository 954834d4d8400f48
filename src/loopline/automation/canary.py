"""Judging a challenger against its champion from live evidence: one statistical check per
metric, each with its effect size, its interval and the rule it applied, and the outcome
they give together (promote, roll back, or keep watching).

Every check is an always-valid interval (`verdicts`), so the worker may look at every
tick. The canary's overall alpha is split evenly between its checks (Bonferroni): an
equal challenger is rolled back, at any number of looks, with probability at most alpha.

- error rate: the difference of proportions, margin `max_error_rate_increase`;
- latency: the difference of mean latency (winsorized at the pooled 99th percentile, so one
  stall of a busy host does not decide), margin the larger of `min_latency_regression_ms` and
  `(max_latency_ratio - 1)` times the champion's median. A harm also needs a one-sided
  Mann-Whitney U test to agree, and the first `warmup_requests` of each arm are left out;
- accuracy: the difference of proportions of correct answers, margin `max_accuracy_drop`;
- mean absolute error (regression): the difference of means, margin
  `(max_mae_ratio - 1)` times the champion's;
- a shadow's accuracy or error is paired: the mean difference on the same labelled requests.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from loopline.automation.verdicts import (
    Interval,
    Verdict,
    difference_of_means,
    difference_of_proportions,
    mean_difference,
    samples_to_detect,
)

if TYPE_CHECKING:
    from loopline.predictions.reports import ArmSamples
    from loopline.specs.loop import RolloutSpec


class Outcome(StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    WATCH = "watch"  # keep the canary running


@dataclass(frozen=True)
class Check:
    """One metric's verdict: `estimate` is challenger minus champion, `low`..`high` its
    interval, `margin` the harm the policy tolerates (in the metric's units)."""

    metric: str
    verdict: Verdict
    estimate: float
    low: float
    high: float
    margin: float
    rule: str
    samples: tuple[int, int]  # champion's, challenger's
    extra: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """One line a person reads: the effect, its interval and what it means."""
        unit = " ms" if self.metric == "latency_ms" else ""
        interval = (
            "no interval yet" if not math.isfinite(self.low) else f"[{self.low:+.4g}, {self.high:+.4g}]{unit}"
        )
        effect = "n/a" if math.isnan(self.estimate) else f"{self.estimate:+.4g}{unit}"
        return (
            f"{self.metric}: {effect} {interval} vs margin {self.margin:.4g}{unit} -> {self.verdict.value} "
            f"(n = {self.samples[0]} vs {self.samples[1]})"
        )

    def to_dict(self) -> dict[str, Any]:
        """As JSON values (infinite bounds as null)."""
        found = asdict(self)
        for key in ("estimate", "low", "high"):
            if not math.isfinite(found[key]):
                found[key] = None
        return found


@dataclass(frozen=True)
class Judgement:
    """All checks of one look, and how many requests and labels the challenger had."""

    checks: list[Check]
    requests: int
    labels: int

    @property
    def harmful(self) -> list[Check]:
        return [c for c in self.checks if c.verdict is Verdict.HARMFUL]

    @property
    def undecided(self) -> list[Check]:
        return [c for c in self.checks if c.verdict is Verdict.UNDECIDED]

    def outcome(self, rollout: RolloutSpec) -> Outcome:
        """Roll back on any harm (at once: an error spike need not wait for `min_requests`);
        promote once the challenger served `min_requests` and every check shows
        non-inferiority; otherwise keep watching."""
        if self.harmful:
            return Outcome.ROLLBACK
        if self.requests >= rollout.min_requests and not self.undecided:
            return Outcome.PROMOTE
        return Outcome.WATCH

    def summary(self) -> str:
        return "; ".join(c.describe() for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "labels": self.labels,
            "checks": [c.to_dict() for c in self.checks],
        }


def judge(
    champion: ArmSamples, challenger: ArmSamples, rollout: RolloutSpec, *, final: bool = False
) -> Judgement:
    """The checks of a canary (or shadow, when `challenger.paired` is set). `final` is the
    one last look at `max_minutes` with `on_inconclusive: promote`: fixed-sample intervals."""
    alpha = rollout.alpha / 3  # three checks share the canary's alpha
    checks = [
        _error_rate(champion, challenger, rollout, alpha, final),
        _latency(champion, challenger, rollout, alpha, final),
        _quality(champion, challenger, rollout, alpha, final),
    ]
    labels = len(challenger.paired) if challenger.paired is not None else len(challenger.scores)
    return Judgement(checks, challenger.attempts, labels)


def _error_rate(
    champion: ArmSamples, challenger: ArmSamples, rollout: RolloutSpec, alpha: float, final: bool
) -> Check:
    margin = rollout.max_error_rate_increase
    tau = max(margin, 0.05)  # wide enough to catch a spike within a few dozen requests
    interval = difference_of_proportions(
        champion.errors, champion.attempts, challenger.errors, challenger.attempts, tau=tau, alpha=alpha,
        fixed=final,
    )  # fmt: skip
    return _check("error_rate", interval, margin, (champion.attempts, challenger.attempts), final, alpha)


def _latency(
    champion: ArmSamples, challenger: ArmSamples, rollout: RolloutSpec, alpha: float, final: bool
) -> Check:
    base, new = champion.latencies_ms, challenger.latencies_ms
    median = float(np.median(base)) if len(base) else 0.0
    margin = max(rollout.min_latency_regression_ms, (rollout.max_latency_ratio - 1) * median)
    extra: dict[str, float] = {}
    if len(base) >= 2 and len(new) >= 2:
        cap = float(np.quantile(np.concatenate([base, new]), 0.99))
        base, new = np.minimum(base, cap), np.minimum(new, cap)
    interval = difference_of_means(base, new, tau=max(margin, 1e-3), alpha=alpha, fixed=final)
    check = _check("latency_ms", interval, margin, (len(base), len(new)), final, alpha)
    if check.verdict is Verdict.HARMFUL:
        from scipy.stats import mannwhitneyu

        test = mannwhitneyu(new, base + margin, alternative="greater")
        extra = {"mann_whitney_p": float(test.pvalue)}
        if test.pvalue >= alpha:  # the ranks do not agree that it is slower by the margin
            check = replace(check, verdict=Verdict.UNDECIDED)
    rule = (
        f"{check.rule}; harmful only if also a Mann-Whitney U test finds it slower by the margin "
        f"(p < {alpha:.3g}); the first {rollout.warmup_requests} requests of each arm left out; "
        f"values winsorized at the pooled 99th percentile"
    )
    return replace(check, rule=rule, extra=extra)


def _quality(
    champion: ArmSamples, challenger: ArmSamples, rollout: RolloutSpec, alpha: float, final: bool
) -> Check:
    """Accuracy (classification) or mean absolute error (regression), on labelled answers."""
    classification = champion.classification
    base = champion.scores
    if classification:
        metric, margin, higher_is_worse = "accuracy", rollout.max_accuracy_drop, False
    else:
        mae = float(np.mean(base)) if len(base) else math.nan
        margin = (rollout.max_mae_ratio - 1) * mae if math.isfinite(mae) else math.inf
        metric, higher_is_worse = "mae", True
    tau = max(margin, 0.02) if math.isfinite(margin) else 1.0
    if challenger.paired is not None:  # a shadow: the same requests, so the paired difference
        pairs = challenger.paired
        enough = len(pairs) >= rollout.min_labels
        interval = mean_difference(pairs if enough else pairs[:0], tau=tau, alpha=alpha, fixed=final)
        return _check(metric, interval, margin, (len(pairs), len(pairs)), final, alpha, higher_is_worse)
    new = challenger.scores
    enough = min(len(base), len(new)) >= rollout.min_labels
    if not enough:
        base, new = base[:0], new[:0]
    if classification:
        interval = difference_of_proportions(
            int(base.sum()), len(base), int(new.sum()), len(new), tau=tau, alpha=alpha, fixed=final
        )
    else:
        interval = difference_of_means(base, new, tau=tau, alpha=alpha, fixed=final)
    sizes = (len(champion.scores), len(challenger.scores))
    return _check(metric, interval, margin, sizes, final, alpha, higher_is_worse)


def _check(
    metric: str, interval: Interval, margin: float, samples: tuple[int, int], final: bool, alpha: float,
    higher_is_worse: bool = True,
) -> Check:  # fmt: skip
    kind = f"fixed-sample interval at the last look (alpha {alpha:.3g})" if final else (
        f"always-valid mixture-SPRT interval (alpha {alpha:.3g} over all looks)"
    )  # fmt: skip
    side = "rise" if higher_is_worse else "drop"
    rule = (
        f"{kind} on challenger minus champion: harmful when the whole interval shows a {side} over "
        f"the margin, non-inferior when none of it does"
    )
    verdict = interval.judge(margin, higher_is_worse) if math.isfinite(margin) else Verdict.UNDECIDED
    return Check(metric, verdict, interval.estimate, interval.low, interval.high, margin, rule, samples)


def needed(rollout: RolloutSpec, champion_accuracy: float | None, champion_error_rate: float) -> str:
    """What the canary needs to be decided, in words: 'about N requests and M labels to
    detect a 2-point accuracy drop'. Counts are for the whole deployment (the challenger
    sees its share of them); a fixed-sample test's figures, which the always-valid test
    needs somewhat more than."""
    share = rollout.percent / 100 if rollout.mode == "canary" else 1.0
    alpha = rollout.alpha / 3
    per_arm = samples_to_detect(
        min(champion_error_rate, 0.5), rollout.max_error_rate_increase or 0.005, alpha=alpha
    )
    requests = math.ceil(max(per_arm, rollout.min_requests) / share)
    text = f"about {requests} requests to detect a {rollout.max_error_rate_increase:.0%} error-rate rise"
    if champion_accuracy is not None and rollout.max_accuracy_drop > 0:
        rate = min(max(champion_accuracy, 0.5), 0.999)
        labels = math.ceil(
            max(samples_to_detect(rate, rollout.max_accuracy_drop, alpha=alpha), rollout.min_labels) / share
        )
        text += f" and {labels} labels to detect a {rollout.max_accuracy_drop * 100:.3g}-point accuracy drop"
    return text
