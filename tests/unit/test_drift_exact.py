"""Every drift statistic against scipy's exact value on scikit-learn's bundled datasets, and
every test on identical data (distance 0, p-value 1, nothing drifted)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, chisquare, ks_2samp, wasserstein_distance
from sklearn import datasets

from loopline.monitoring import build_profile, detect_drift
from loopline.profiling.drift import CATEGORICAL_TESTS, NUMERIC_TESTS
from loopline.profiling.profile import (
    FINE_BINS,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    category_counts,
    fine_edges,
    fine_range,
)
from loopline.profiling.stats import EPSILON, JS_BINS, category_vectors, wasserstein_normed

LOADERS = ["iris", "wine", "breast_cancer", "diabetes", "digits", "linnerud"]


def _frame(name: str) -> pd.DataFrame:
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame: pd.DataFrame = bunch.frame
    return frame


def _halves(frame: pd.DataFrame) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Alike (every other row) and unlike (first and second half: these files are sorted)."""
    middle = len(frame) // 2
    return [(frame.iloc[::2], frame.iloc[1::2]), (frame.iloc[:middle], frame.iloc[middle:])]


def _statistic(profile: ReferenceProfile, current: pd.DataFrame, column: str, test: str) -> float:
    found = detect_drift(profile, current, columns=[column], tests={column: test}).column(column).statistic
    assert found is not None
    return found


@pytest.mark.parametrize("name", LOADERS)
def test_identical_data_never_drifts_under_any_test(name: str) -> None:
    frame = _frame(name)
    profile = build_profile(frame)
    for column, reference in profile.columns.items():
        for test in NUMERIC_TESTS if isinstance(reference, NumericProfile) else CATEGORICAL_TESTS:
            result = detect_drift(profile, frame, columns=[column], tests={column: test}).column(column)
            assert result.statistic is not None
            if test in ("ks", "chisquare", "z"):
                assert result.statistic == pytest.approx(1.0), (column, test)
            else:
                assert result.statistic == pytest.approx(0.0, abs=1e-12), (column, test)
            assert not result.drifted, (column, test)


@pytest.mark.parametrize("name", LOADERS)
def test_numeric_statistics_equal_scipys_exact_values(name: str) -> None:
    for reference_frame, current_frame in _halves(_frame(name)):
        profile = build_profile(reference_frame)
        for column, reference in profile.columns.items():
            if not isinstance(reference, NumericProfile):
                continue
            ref = reference_frame[column].to_numpy(dtype=float)
            cur = current_frame[column].to_numpy(dtype=float)

            def statistic(test: str) -> float:
                return _statistic(profile, current_frame, column, test)  # noqa: B023 (called at once)

            scale = ref.std(ddof=1) or (abs(ref.mean()) or 1.0)
            assert statistic("wasserstein") == pytest.approx(wasserstein_distance(ref, cur) / scale, rel=1e-9)
            assert statistic("ks") == pytest.approx(ks_2samp(ref, cur).pvalue, rel=1e-9)
            low, top = fine_range(ref.min(), ref.max())
            inside = cur[(cur >= ref.min()) & (cur <= ref.max())]
            edges = fine_edges(low, top)[:: FINE_BINS // JS_BINS]  # runs of the fine bins
            expected = np.concatenate([[0], np.histogram(ref, edges)[0], [0]])
            actual = np.concatenate(
                [[(cur < low).sum()], np.histogram(inside, edges)[0], [(cur > ref.max()).sum()]]
            )
            assert statistic("jensenshannon") == pytest.approx(jensenshannon(expected, actual), abs=1e-9)
            assert np.array_equal(
                np.bincount(
                    np.searchsorted(reference.psi_edges, ref, side="right"),
                    minlength=len(reference.psi_counts),
                ),
                reference.psi_counts,
            )
            ref_share = reference.psi_counts / len(ref)
            cur_share = np.bincount(
                np.searchsorted(reference.psi_edges, cur, side="right"), minlength=len(reference.psi_counts)
            ) / len(cur)
            ref_share, cur_share = (np.where(s == 0, EPSILON, s) for s in (ref_share, cur_share))
            psi = ((cur_share - ref_share) * np.log(cur_share / ref_share)).sum()
            assert statistic("psi") == pytest.approx(psi, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", LOADERS)
def test_categorical_statistics_equal_scipys_exact_values(name: str) -> None:
    checked = 0
    for reference_frame, current_frame in _halves(_frame(name)):
        profile = build_profile(reference_frame)
        for column, reference in profile.columns.items():
            if not isinstance(reference, CategoricalProfile):
                continue
            result = {
                test: detect_drift(profile, current_frame, columns=[column], tests={column: test}).column(
                    column
                )
                for test in CATEGORICAL_TESTS
            }
            counts = category_counts(current_frame[column])
            _, expected, actual = category_vectors(reference, counts)
            assert result["jensenshannon"].statistic == pytest.approx(
                jensenshannon(expected, actual), abs=1e-9
            )
            top = int(np.argmax(expected))
            table = [
                [expected[top], expected.sum() - expected[top]],
                [actual[top], actual.sum() - actual[top]],
            ]
            if table[0][1] + table[1][1] == 0:
                assert result["z"].statistic == 1.0  # one value on both sides
            else:
                assert result["z"].statistic == pytest.approx(
                    chi2_contingency(table, correction=False).pvalue
                )
            if (expected > 0).all() and len(expected) > 1:  # no unseen category, no smoothing
                exact = chisquare(actual, expected / expected.sum() * actual.sum()).pvalue
                assert result["chisquare"].statistic == pytest.approx(exact, rel=1e-9, abs=1e-300)
            checked += 1
    assert checked or name in ("digits", "linnerud")


def test_binned_wasserstein_stays_within_its_stated_bound() -> None:
    """Without the distinct values the fine bins stand in: off by at most two bin widths."""
    frame = _frame("breast_cancer")
    for reference_frame, current_frame in _halves(frame):
        profile = build_profile(reference_frame)
        for column, reference in profile.columns.items():
            if not isinstance(reference, NumericProfile):
                continue
            ref = reference_frame[column].to_numpy(dtype=float)
            cur = current_frame[column].to_numpy(dtype=float)
            scale = ref.std(ddof=1)
            binned = NumericProfile(**{**reference.__dict__, "distinct": np.zeros(0)})
            width = (fine_range(ref.min(), ref.max())[1] - ref.min()) / FINE_BINS
            error = abs(wasserstein_normed(binned, cur) - wasserstein_distance(ref, cur) / scale)
            assert error <= 2 * width / scale


def test_chi_square_on_a_constant_column_is_a_number() -> None:
    reference = pd.DataFrame({"plan": ["a"] * 50})
    same = detect_drift(reference, reference.iloc[:20], tests={"plan": "chisquare"}).column("plan")
    assert same.statistic == 1.0 and not same.drifted
    moved = detect_drift(
        reference, pd.DataFrame({"plan": ["a"] * 10 + ["b"] * 10}), tests={"plan": "chisquare"}
    )
    assert moved.column("plan").statistic is not None and moved.column("plan").drifted
