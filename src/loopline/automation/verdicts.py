"""Always-valid statistics for judging a canary against its champion while it runs.

A worker looks at a canary at every tick. A fixed-sample test read at every look rejects a
true null far more often than its alpha (twenty looks at alpha 0.05 reject an A/A test
about a quarter of the time). The intervals here are confidence sequences: the normal
mixture boundary of the mixture sequential probability ratio test (Robbins 1970; Johari
et al., "Always Valid Inference", 2017). With probability at least 1 - alpha an interval
holds the true difference at every look at once, so a decision taken at the first look
whose interval excludes the margin keeps its error rate however often anyone looks.

`tau` is the smallest mixing scale: the size of difference the sequence is most sensitive
to. Set it near the policy's margin; larger effects are caught by the mixture's larger scales.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

import numpy as np


class Verdict(StrEnum):
    """What an interval says of the candidate against a margin of harm."""

    HARMFUL = "harmful"  # worse than the baseline by more than the margin, at every look's level
    NON_INFERIOR = "non_inferior"  # worse by less than the margin, if at all
    UNDECIDED = "undecided"  # keep watching


@dataclass(frozen=True)
class Interval:
    """An estimate of `candidate - baseline` and its always-valid interval at level 1 - alpha."""

    estimate: float
    low: float
    high: float
    alpha: float

    def judge(self, margin: float, higher_is_worse: bool = True) -> Verdict:
        """HARMFUL when the whole interval is past the margin of harm, NON_INFERIOR when it
        lies entirely on the good side of it, UNDECIDED otherwise. `margin` >= 0 is how much
        worse the candidate may be (an error rate up by 0.01, accuracy down by 0.02...)."""
        low, high = (self.low, self.high) if higher_is_worse else (-self.high, -self.low)
        if low > margin:
            return Verdict.HARMFUL
        if high < margin:
            return Verdict.NON_INFERIOR
        return Verdict.UNDECIDED


SCALES = tuple(2.0**k for k in range(7))  # the mixture's scales: tau to 64 tau


def _half_width(variance: float, tau: float, alpha: float, fixed: bool = False) -> float:
    """How far from the estimate the interval reaches, for an estimate of variance
    `variance`: where the likelihood ratio, mixed over normal priors of scales `tau *
    SCALES` (equal weights; a mixture of martingales is one), reaches 1/alpha. One scale
    alone is either slow on large effects or loose on small ones; the mixture is within a
    log factor of the best scale for each. `fixed`: the ordinary two-sided normal interval,
    valid for one look only."""
    if variance <= 0:
        return 0.0
    if fixed:
        return NormalDist().inv_cdf(1 - alpha / 2) * math.sqrt(variance)
    mixed = [variance + (tau * s) ** 2 for s in SCALES]

    def ratio(d: float) -> float:  # the mixture likelihood ratio at distance d: increasing in d
        return sum(
            math.sqrt(variance / m) * math.exp(min(700.0, d * d * (m - variance) / (2 * variance * m)))
            for m in mixed
        ) / len(mixed)

    # The scale that alone reaches len/alpha first bounds the answer from above.
    high = min(
        math.sqrt(variance * m / (m - variance) * (2 * math.log(len(mixed) / alpha) + math.log(m / variance)))
        for m in mixed
    )
    low = 0.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if ratio(middle) < 1 / alpha else (low, middle)
    return high


def _check(alpha: float, tau: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")


def difference_of_proportions(
    baseline_hits: int,
    baseline_n: int,
    candidate_hits: int,
    candidate_n: int,
    *,
    tau: float,
    alpha: float = 0.05,
    fixed: bool = False,
) -> Interval:
    """The candidate's rate (errors, correct answers...) minus the baseline's, with an
    always-valid interval. The variance takes each rate as at least 1/(n+1) away from 0 and
    1, so that a run of zero errors does not shrink the interval to a point."""
    _check(alpha, tau)
    if baseline_n <= 0 or candidate_n <= 0:
        return Interval(math.nan, -math.inf, math.inf, alpha)
    p_base, p_new = baseline_hits / baseline_n, candidate_hits / candidate_n

    def variance(p: float, n: int) -> float:
        p = min(max(p, 1 / (n + 1)), n / (n + 1))
        return p * (1 - p) / n

    estimate = p_new - p_base
    half = _half_width(variance(p_base, baseline_n) + variance(p_new, candidate_n), tau, alpha, fixed)
    return Interval(estimate, estimate - half, estimate + half, alpha)


def proportion(hits: int, n: int, *, tau: float, alpha: float = 0.05) -> Interval:
    """A rate (errors, correct answers) with an always-valid interval, for watching one
    arm against a fixed bound."""
    _check(alpha, tau)
    if n <= 0:
        return Interval(math.nan, -math.inf, math.inf, alpha)
    p = hits / n
    clamped = min(max(p, 1 / (n + 1)), n / (n + 1))
    half = _half_width(clamped * (1 - clamped) / n, tau, alpha)
    return Interval(p, p - half, p + half, alpha)


def difference_of_means(
    baseline: np.ndarray, candidate: np.ndarray, *, tau: float, alpha: float = 0.05, fixed: bool = False
) -> Interval:
    """The candidate's mean minus the baseline's (latencies, losses), with an always-valid
    interval from the sample variances (asymptotically valid, as the mSPRT is)."""
    _check(alpha, tau)
    if len(baseline) < 2 or len(candidate) < 2:
        return Interval(math.nan, -math.inf, math.inf, alpha)
    estimate = float(np.mean(candidate) - np.mean(baseline))
    variance = float(np.var(baseline, ddof=1) / len(baseline) + np.var(candidate, ddof=1) / len(candidate))
    half = _half_width(variance, tau, alpha, fixed)
    return Interval(estimate, estimate - half, estimate + half, alpha)


def mean_difference(
    differences: np.ndarray, *, tau: float, alpha: float = 0.05, fixed: bool = False
) -> Interval:
    """The mean of paired differences (a shadow's score minus the primary's on the same
    requests), with an always-valid interval."""
    _check(alpha, tau)
    if len(differences) < 2:
        return Interval(math.nan, -math.inf, math.inf, alpha)
    estimate = float(np.mean(differences))
    half = _half_width(float(np.var(differences, ddof=1)) / len(differences), tau, alpha, fixed)
    return Interval(estimate, estimate - half, estimate + half, alpha)


def samples_to_detect(rate: float, margin: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """About how many observations per arm a fixed-sample test needs to tell a rate of
    `rate` from one `margin` away (either way: the noisier of the two), with this power:
    the floor of what the always-valid interval needs (it needs more, the price of
    looking at every tick)."""
    if not 0 < margin < 1 or not 0 <= rate <= 1:
        raise ValueError("rate must be in [0, 1] and margin in (0, 1)")
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    moved = [r for r in (rate - margin, rate + margin) if 0 <= r <= 1]
    variance = rate * (1 - rate) + max(r * (1 - r) for r in moved)
    return max(1, math.ceil(z * z * variance / (margin * margin)))
