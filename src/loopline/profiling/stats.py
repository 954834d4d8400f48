"""The drift statistics, each comparing a reference profile with current values.

Every function returns the statistic, where lower means more alike except for p-values.
They read the reference only from its profile, and the current data in one pass.
"""

from __future__ import annotations

import numpy as np

from loopline.profiling.profile import FINE_BINS, CategoricalProfile, NumericProfile, fine_range

EPSILON = 1e-4  # stands in for empty bins in PSI and Jensen-Shannon, as is customary


def wasserstein_normed(reference: NumericProfile, current: np.ndarray) -> float:
    """Wasserstein-1 distance divided by the reference standard deviation.

    Inside the reference range both CDFs are read off the same fine bins; outside it the
    reference CDF is 0 or 1, so the tails are integrated exactly from the current values.
    """
    low, high = reference.minimum, reference.maximum
    span = fine_range(low, high)  # the very bins of the profile, so identical data gives exactly 0
    width = (span[1] - low) / FINE_BINS
    inside = current[(current >= low) & (current <= high)]
    below = current[current < low]
    above = current[current > high]
    n = len(current)
    current_counts = np.histogram(inside, bins=FINE_BINS, range=span)[0]
    reference_cdf = np.cumsum(reference.fine_counts) / reference.count
    current_cdf = (len(below) + np.cumsum(current_counts)) / n
    distance = float(np.abs(reference_cdf - current_cdf).sum() * width)
    distance += float((low - below).sum() / n) + float((above - high).sum() / n)
    scale = reference.std if reference.std > 0 else (abs(reference.mean) or 1.0)
    return distance / scale


def _smoothed(counts: np.ndarray) -> np.ndarray:
    shares = counts / max(counts.sum(), 1)
    return np.where(shares == 0, EPSILON, shares)


def psi_numeric(reference: NumericProfile, current: np.ndarray) -> float:
    current_counts = np.bincount(
        np.searchsorted(reference.psi_edges, current, side="right"), minlength=len(reference.psi_edges) + 1
    )
    expected, actual = _smoothed(reference.psi_counts), _smoothed(current_counts)
    return float(((actual - expected) * np.log(actual / expected)).sum())


def jensen_shannon_numeric(reference: NumericProfile, current: np.ndarray, bins: int = 30) -> float:
    """Jensen-Shannon distance over equal-width bins spanning both ranges."""
    low = min(reference.minimum, float(current.min()))
    high = max(reference.maximum, float(current.max()))
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    centres = (
        reference.minimum + (np.arange(FINE_BINS) + 0.5) * (reference.maximum - reference.minimum) / FINE_BINS
    )
    reference_counts = np.histogram(centres, bins=edges, weights=reference.fine_counts)[0]
    return _jensen_shannon(reference_counts, np.histogram(current, bins=edges)[0])


def _jensen_shannon(first: np.ndarray, second: np.ndarray) -> float:
    """scipy's jensenshannon (natural log), without the 0.3 s import of scipy.spatial."""
    p, q = _smoothed(first), _smoothed(second)
    p, q = p / p.sum(), q / q.sum()
    middle = (p + q) / 2
    divergence = (p * np.log(p / middle)).sum() + (q * np.log(q / middle)).sum()
    return float(np.sqrt(max(divergence, 0.0) / 2))


def ks_pvalue(reference: NumericProfile, current: np.ndarray, rng: np.random.Generator, sample: int) -> float:
    from scipy.stats import ks_2samp

    drawn = current if len(current) <= sample else rng.choice(current, sample, replace=False)
    return float(ks_2samp(reference.sample, drawn).pvalue)


def category_vectors(
    reference: CategoricalProfile, current: dict[str, int]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Aligned counts over the union of categories (unseen ones included)."""
    labels = list(dict.fromkeys([*reference.frequencies, *current]))
    return (
        labels,
        np.array([reference.frequencies.get(k, 0) for k in labels], dtype=float),
        np.array([current.get(k, 0) for k in labels], dtype=float),
    )


def jensen_shannon_categorical(reference: CategoricalProfile, current: dict[str, int]) -> float:
    _, expected, actual = category_vectors(reference, current)
    return _jensen_shannon(expected, actual)


def psi_categorical(reference: CategoricalProfile, current: dict[str, int]) -> float:
    _, expected, actual = category_vectors(reference, current)
    expected, actual = _smoothed(expected), _smoothed(actual)
    return float(((actual - expected) * np.log(actual / expected)).sum())


def chi_square_pvalue(reference: CategoricalProfile, current: dict[str, int]) -> float:
    from scipy.stats import chisquare

    _, expected, actual = category_vectors(reference, current)
    expected = _smoothed(expected) * actual.sum()
    expected *= actual.sum() / expected.sum()
    return float(chisquare(actual, expected).pvalue)


def z_test_pvalue(reference: CategoricalProfile, current: dict[str, int]) -> float:
    """Two-proportion z-test on the share of the reference's most common value."""
    from scipy.stats import norm

    top = max(reference.frequencies, key=lambda k: reference.frequencies[k])
    n1, n2 = reference.count, sum(current.values())
    x1, x2 = reference.frequencies[top], current.get(top, 0)
    pooled = (x1 + x2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 1.0 if se == 0 else float(2 * norm.sf(abs(x1 / n1 - x2 / n2) / se))
