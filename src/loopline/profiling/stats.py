"""The drift statistics, each comparing a reference profile with current values.

Every function returns the statistic, where lower means more alike except for p-values.
They read the reference only from its profile, and the current data in one pass.
"""

from __future__ import annotations

import numpy as np

from loopline.profiling.profile import FINE_BINS, CategoricalProfile, NumericProfile, fine_range

EPSILON = 1e-4  # stands in for empty bins in PSI, as is customary
JS_BINS = 40  # Jensen-Shannon bins over the reference range of a numeric column


def wasserstein_normed(reference: NumericProfile, current: np.ndarray) -> float:
    """Wasserstein-1 distance divided by the reference standard deviation.

    Exact when the profile kept the reference's distinct values. Otherwise both CDFs are
    read off the same fine bins inside the reference range (so identical data gives exactly
    0, and the error is at most a fine bin's width times the CDF difference in that bin)
    and the tails outside it are integrated exactly from the current values.
    """
    scale = reference.std if reference.std > 0 else (abs(reference.mean) or 1.0)
    if len(reference.distinct):
        return _wasserstein_exact(reference.distinct, reference.distinct_counts, current) / scale
    low, high = reference.minimum, reference.maximum
    width = (fine_range(low, high)[1] - low) / FINE_BINS
    below, fine, above = _fine_histogram(reference, current)
    n = len(current)
    reference_cdf = np.cumsum(reference.fine_counts) / reference.count
    current_cdf = (len(below) + np.cumsum(fine)) / n
    distance = float(np.abs(reference_cdf - current_cdf).sum() * width)
    distance += float((low - below).sum() / n) + float((above - high).sum() / n)
    return distance / scale


def _wasserstein_exact(values: np.ndarray, counts: np.ndarray, current: np.ndarray) -> float:
    """The integral of |F - G| between the two step CDFs, as scipy computes it."""
    current_values, current_counts = np.unique(current, return_counts=True)
    points = np.union1d(values, current_values)
    reference_cdf = np.cumsum(np.bincount(np.searchsorted(points, values), counts, len(points)))
    current_cdf = np.cumsum(np.bincount(np.searchsorted(points, current_values), current_counts, len(points)))
    gaps = np.abs(reference_cdf / counts.sum() - current_cdf / len(current))[:-1]
    return float((gaps * np.diff(points)).sum())


def _fine_histogram(
    reference: NumericProfile, current: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The current values below the reference range, their counts in its fine bins, and
    the values above it: binned exactly as the reference was."""
    low, high = reference.minimum, reference.maximum
    inside = current[(current >= low) & (current <= high)]
    fine = np.histogram(inside, bins=FINE_BINS, range=fine_range(low, high))[0]
    return current[current < low], fine, current[current > high]


def _smoothed(counts: np.ndarray) -> np.ndarray:
    shares = counts / max(counts.sum(), 1)
    return np.where(shares == 0, EPSILON, shares)


def psi_numeric(reference: NumericProfile, current: np.ndarray) -> float:
    current_counts = np.bincount(
        np.searchsorted(reference.psi_edges, current, side="right"), minlength=len(reference.psi_edges) + 1
    )
    expected, actual = _smoothed(reference.psi_counts), _smoothed(current_counts)
    return float(((actual - expected) * np.log(actual / expected)).sum())


def jensen_shannon_numeric(reference: NumericProfile, current: np.ndarray) -> float:
    """Jensen-Shannon distance over JS_BINS equal bins of the reference range, plus one bin
    for the current values below it and one above. Each bin is a run of fine bins, so the
    reference counts are exact and identical data scores exactly 0."""
    below, fine, above = _fine_histogram(reference, current)
    grouped = FINE_BINS // JS_BINS
    return _jensen_shannon(
        np.concatenate([[0], reference.fine_counts.reshape(JS_BINS, grouped).sum(axis=1), [0]]),
        np.concatenate([[len(below)], fine.reshape(JS_BINS, grouped).sum(axis=1), [len(above)]]),
    )


def _jensen_shannon(first: np.ndarray, second: np.ndarray) -> float:
    """scipy's jensenshannon (natural log) of two count vectors, without the 0.3 s import
    of scipy.spatial. Empty bins need no smoothing: 0 log 0 is 0."""
    p, q = first / first.sum(), second / second.sum()
    middle = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        divergence = np.nansum(p * np.log(p / middle)) + np.nansum(q * np.log(q / middle))
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

    labels, expected, actual = category_vectors(reference, current)
    if len(labels) == 1:  # one value on both sides: nothing differs, and chi-square has no freedom
        return 1.0
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
