"""Drift tests: correct on data with known shifts, bounded false positives over many seeds,
properties of the statistics, and every awkward input handled in the open."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from loopline.core.errors import InvalidInput
from loopline.monitoring import build_profile, detect_drift
from loopline.profiling.profile import ReferenceProfile, profile_numeric
from loopline.profiling.stats import jensen_shannon_categorical, psi_numeric, wasserstein_normed
from tests.conftest import seeded_random


def _frames(rows: int, seed: int, shift: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame(
        {
            "stable": rng.normal(0, 1, rows),
            "moved": rng.normal(0, 1, rows),
            "plan": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
            "region": rng.choice(["n", "s"], rows),
        }
    )
    current = pd.DataFrame(
        {
            "stable": rng.normal(0, 1, rows),
            "moved": rng.normal(shift, 1, rows),
            "plan": rng.choice(["a", "b", "c"], rows, p=[0.2, 0.3, 0.5]),
            "region": rng.choice(["n", "s"], rows),
        }
    )
    return reference, current


@pytest.mark.parametrize("rows", [300, 5_000, 50_000])
def test_known_shifts_are_found_and_nothing_else(rows: int) -> None:
    reference, current = _frames(rows, seed=seeded_random().randrange(10**6))
    result = detect_drift(reference, current)
    assert sorted(result.drifted_columns) == ["moved", "plan"]
    small = rows <= 1000
    assert result.column("moved").test == ("ks" if small else "wasserstein")
    assert result.column("plan").test == ("chisquare" if small else "jensenshannon")
    assert result.column("region").test == ("z" if small else "jensenshannon")
    assert result.share == 0.5 and result.dataset_drift


def test_false_positives_stay_bounded_over_many_seeds() -> None:
    """No shift at all: distance tests almost never fire, p-value tests at about their alpha."""
    start = seeded_random().randrange(10**6)
    distance_hits = p_value_hits = 0
    for seed in range(start, start + 40):
        reference, current = _frames(5_000, seed, shift=0.0)
        current["plan"] = np.random.default_rng(seed).choice(["a", "b", "c"], 5_000, p=[0.5, 0.3, 0.2])
        distance_hits += len(detect_drift(reference, current).drifted_columns)
        tests = {"stable": "ks", "moved": "ks", "plan": "chisquare", "region": "z"}
        p_value_hits += len(detect_drift(reference, current, tests=tests).drifted_columns)
    assert distance_hits == 0
    assert p_value_hits <= 0.12 * 160  # 4 columns x 40 seeds at alpha 0.05, with room for chance


def test_statistics_agree_with_their_textbook_definitions() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(5, 2, 200_000)
    current = rng.normal(6, 2, 200_000)
    profile = profile_numeric(pd.Series(reference), rng)
    exact = wasserstein_distance(reference, current) / reference.std(ddof=1)
    assert wasserstein_normed(profile, current) == pytest.approx(exact, rel=0.01)
    assert psi_numeric(profile, reference) == pytest.approx(0.0, abs=1e-3)
    assert psi_numeric(profile, current) > 0.1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=8, max_size=400),
    st.floats(-1e3, 1e3, allow_nan=False),
)
def test_wasserstein_properties(values: list[float], shift: float) -> None:
    data = np.asarray(values)
    profile = profile_numeric(pd.Series(data), np.random.default_rng(0))
    assert wasserstein_normed(profile, data) == pytest.approx(0.0, abs=1e-9)
    moved = wasserstein_normed(profile, data + shift)
    assert moved >= 0
    scale = profile.std if profile.std > 0 else (abs(profile.mean) or 1.0)
    assert moved == pytest.approx(
        abs(shift) / scale, rel=0.02, abs=1e-6 + 1e-3 * (data.max() - data.min()) / scale
    )


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcdefg"), st.integers(1, 1000), min_size=1),
    st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 1000), min_size=1),
)
def test_jensen_shannon_is_a_bounded_symmetric_distance(
    first: dict[str, int], second: dict[str, int]
) -> None:
    series_a = pd.Series([k for k, n in first.items() for _ in range(n)])
    series_b = pd.Series([k for k, n in second.items() for _ in range(n)])
    profile_a, profile_b = build_profile(series_a.to_frame("c")), build_profile(series_b.to_frame("c"))
    a_to_b = jensen_shannon_categorical(profile_a.columns["c"], second)  # type: ignore[arg-type]
    b_to_a = jensen_shannon_categorical(profile_b.columns["c"], first)  # type: ignore[arg-type]
    labels = sorted({*first, *second})
    shares = [np.array([d.get(k, 0) for k in labels], float) for d in (first, second)]
    assert a_to_b == pytest.approx(jensenshannon(*shares), abs=1e-9)  # scipy's own definition
    assert 0 <= a_to_b <= np.sqrt(np.log(2)) + 1e-9
    assert a_to_b == pytest.approx(b_to_a, abs=1e-9)
    assert jensen_shannon_categorical(profile_a.columns["c"], first) == pytest.approx(0, abs=1e-9)  # type: ignore[arg-type]


def test_awkward_inputs_become_findings_not_crashes() -> None:
    reference, current = _frames(3_000, seed=1)
    reference["constant"] = 7.0
    reference["empty"] = np.nan
    current["constant"] = 7.0
    current["empty"] = np.nan
    current["plan"] = np.where(np.arange(3_000) % 10 == 0, "z", current["plan"])  # an unseen category
    current = current.drop(columns=["region"]).assign(brand_new=1)
    current["stable"] = current["stable"].astype(str)  # now text that reads as numbers
    result = detect_drift(reference, current)
    assert result.column("region").drifted and result.column("region").test == "presence"
    assert result.column("empty").statistic is None and not result.column("empty").drifted
    assert "unseen categories: ['z']" in result.column("plan").detail
    assert not result.column("stable").drifted  # numeric text is read as numbers
    assert not result.column("constant").drifted and result.column("constant").statistic is not None
    assert any("missing from the current data" in w for w in result.warnings)
    assert any("'brand_new'" in w for w in result.warnings)
    assert all(c.statistic is None or np.isfinite(c.statistic) for c in result.columns)  # no silent NaN


def test_a_column_turned_to_text_or_to_nothing_has_drifted() -> None:
    reference, current = _frames(3_000, seed=2)
    current["stable"] = "unknown"
    current["moved"] = np.nan
    result = detect_drift(reference, current)
    assert result.column("stable").drifted and "no longer numbers" in result.column("stable").detail
    assert result.column("moved").drifted and result.column("moved").detail == "all values missing"


def test_input_mistakes_are_clear() -> None:
    reference, current = _frames(500, seed=3)
    with pytest.raises(InvalidInput, match="no rows"):
        detect_drift(reference, current.head(0))
    with pytest.raises(InvalidInput, match="no rows to compare with"):
        detect_drift(reference.head(0), current)
    with pytest.raises(InvalidInput, match=r"\['nope'\] are not in the reference"):
        detect_drift(reference, current, columns=["nope"])
    with pytest.raises(InvalidInput, match="test 'chisquare' does not apply to numeric column 'moved'"):
        detect_drift(reference, current, tests={"moved": "chisquare"})


def test_a_stored_profile_gives_the_same_answer_as_the_frame() -> None:
    reference, current = _frames(20_000, seed=4)
    profile = ReferenceProfile.from_dict(build_profile(reference).to_dict())
    from_frame = detect_drift(reference, current)
    from_profile = detect_drift(profile, current)
    assert [c.statistic for c in from_frame.columns] == pytest.approx(
        [c.statistic for c in from_profile.columns]
    )
