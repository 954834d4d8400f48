"""The always-valid canary statistics: their error rates under repeated looks, their power,
and the sample sizes they announce."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from loopline.automation.verdicts import (
    Verdict,
    difference_of_means,
    difference_of_proportions,
    samples_to_detect,
)
from tests.conftest import seeded_random

LOOKS = range(100, 2001, 100)  # a worker looking every 100 requests, 20 times


def _rejections_over_looks(rng: np.random.Generator, rate: float, seeds: int) -> tuple[int, int]:
    """A/A tests looked at 20 times: how many the always-valid interval and a naive 95%
    interval reject at some look."""
    always_valid = naive = 0
    for _ in range(seeds):
        base, new = rng.random(2000) < rate, rng.random(2000) < rate
        hit_valid = hit_naive = False
        for n in LOOKS:
            b, c = int(base[:n].sum()), int(new[:n].sum())
            interval = difference_of_proportions(b, n, c, n, tau=0.02)
            hit_valid |= not interval.low <= 0 <= interval.high
            p_b, p_c = b / n, c / n
            se = math.sqrt((p_b * (1 - p_b) + p_c * (1 - p_c)) / n) or 1e-9
            hit_naive |= abs(p_c - p_b) / se > norm.ppf(0.975)
        always_valid += hit_valid
        naive += hit_naive
    return always_valid, naive


def test_repeated_looks_keep_the_error_rate_that_naive_intervals_lose() -> None:
    rng = np.random.default_rng(seeded_random().randrange(10**6))
    always_valid, naive = _rejections_over_looks(rng, 0.1, seeds=300)
    assert always_valid <= 0.05 * 300  # at most alpha, however many looks
    assert naive >= 0.1 * 300  # the same looks at a fixed-sample interval reject far more often


def test_a_real_harm_is_found_and_an_equal_candidate_is_non_inferior() -> None:
    rng = np.random.default_rng(seeded_random().randrange(10**6))
    base, worse = rng.random(3000) < 0.02, rng.random(3000) < 0.08
    looks = [
        difference_of_proportions(int(base[:n].sum()), n, int(worse[:n].sum()), n, tau=0.01).judge(0.01)
        for n in range(100, 3001, 100)
    ]
    assert Verdict.HARMFUL in looks and Verdict.NON_INFERIOR not in looks
    equal = difference_of_proportions(1000, 20_000, 1010, 20_000, tau=0.02)
    assert equal.judge(margin=0.02) is Verdict.NON_INFERIOR
    assert difference_of_proportions(50, 100, 50, 100, tau=0.02).judge(0.02) is Verdict.UNDECIDED
    # accuracy: higher is better, so a drop is the harm
    dropped = difference_of_proportions(18_000, 20_000, 16_000, 20_000, tau=0.02)
    assert dropped.judge(margin=0.02, higher_is_worse=False) is Verdict.HARMFUL


def test_latency_noise_is_never_harm_and_a_real_regression_is() -> None:
    rng = np.random.default_rng(seeded_random().randrange(10**6))
    champion = rng.lognormal(np.log(5), 0.8, 400)  # milliseconds, heavy-tailed as on a busy machine
    noisy_twin = rng.lognormal(np.log(5), 0.8, 400)
    assert difference_of_means(champion, noisy_twin, tau=5.0).judge(margin=5.0) is not Verdict.HARMFUL
    slower = noisy_twin + 20.0
    assert difference_of_means(champion, slower, tau=5.0).judge(margin=5.0) is Verdict.HARMFUL


def test_the_announced_sample_size_gives_the_announced_power() -> None:
    rng = np.random.default_rng(seeded_random().randrange(10**6))
    n = samples_to_detect(0.9, 0.02)  # accuracy 0.9, a 2-point drop
    base = rng.binomial(n, 0.9, 4000) / n
    drop = rng.binomial(n, 0.88, 4000) / n
    se = np.sqrt((base * (1 - base) + drop * (1 - drop)) / n)
    power = float(np.mean((base - drop) / se > norm.ppf(0.975)))
    assert 0.77 <= power <= 0.86  # 0.8 asked, within simulation noise


def test_nothing_to_compare_is_undecided_and_bad_settings_are_refused() -> None:
    assert difference_of_proportions(0, 0, 5, 10, tau=0.02).judge(0.01) is Verdict.UNDECIDED
    assert difference_of_means(np.array([1.0]), np.array([2.0, 3.0]), tau=1.0).judge(0.5) is Verdict.UNDECIDED
    with pytest.raises(ValueError, match="alpha"):
        difference_of_proportions(1, 10, 1, 10, tau=0.02, alpha=1.5)
    with pytest.raises(ValueError, match="tau"):
        difference_of_proportions(1, 10, 1, 10, tau=0.0)
