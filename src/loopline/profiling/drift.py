"""`detect_drift`: which columns of a current window differ from the reference, by how much,
according to which test, and whether the dataset as a whole drifted.

Default tests follow Evidently's choices, so results agree with what users know: on a
reference of at most 1,000 rows, KS for numbers and chi-square (a z-test when binary) for
categories; above that, normalised Wasserstein for numbers and Jensen-Shannon for
categories, where p-values flag practically irrelevant differences. Every test can be
chosen per column. Missing columns, unseen categories, empty or constant columns end up
in the result as findings, never as a crash or a silent NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopline.core.errors import InvalidInput
from loopline.profiling import stats
from loopline.profiling.profile import (
    OTHER,
    SAMPLE,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    category_counts,
    numeric_values,
)

SMALL = 1000  # reference rows up to which p-value tests are the default
P_VALUE_TESTS = frozenset({"ks", "chisquare", "z"})
NUMERIC_TESTS = ("wasserstein", "ks", "psi", "jensenshannon")
CATEGORICAL_TESTS = ("jensenshannon", "chisquare", "z", "psi")
THRESHOLDS = {"wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1, "ks": 0.05, "chisquare": 0.05, "z": 0.05}


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test: its statistic, the threshold it was judged by, the verdict."""

    column: str
    kind: str  # numeric | categorical
    test: str
    statistic: float | None  # a p-value for ks, chisquare and z; a distance otherwise
    threshold: float
    drifted: bool
    detail: str = ""


@dataclass
class DriftResult:
    """Drift of every column, and whether the dataset drifted (share of drifted columns)."""

    columns: list[ColumnDrift]
    share: float
    drift_share: float
    reference_rows: int
    current_rows: int
    warnings: list[str] = field(default_factory=list)

    @property
    def dataset_drift(self) -> bool:
        """Whether the share of drifted columns reaches `drift_share`."""
        return self.share >= self.drift_share

    @property
    def drifted_columns(self) -> list[str]:
        """The names of the drifted columns, in column order."""
        return [c.column for c in self.columns if c.drifted]

    def column(self, name: str) -> ColumnDrift:
        """The result of column `name` (KeyError if it was not tested)."""
        for item in self.columns:
            if item.column == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON values."""
        return {
            "dataset_drift": self.dataset_drift,
            "share": self.share,
            "drift_share": self.drift_share,
            "drifted_columns": self.drifted_columns,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": [asdict(c) for c in self.columns],
            "warnings": self.warnings,
        }


def _default_test(column: NumericProfile | CategoricalProfile, rows: int) -> str:
    if isinstance(column, NumericProfile):
        return "ks" if rows <= SMALL else "wasserstein"
    if rows <= SMALL:
        return "z" if len([k for k in column.frequencies if k != OTHER]) <= 2 else "chisquare"
    return "jensenshannon"


def detect_drift(
    reference: pd.DataFrame | ReferenceProfile | Any,
    current: pd.DataFrame | Any,
    *,
    columns: Sequence[str] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    seed: int = 0,
) -> DriftResult:
    """Compare `current` with `reference`: frames, Arrow tables, or registered datasets
    (`loopline.datasets.get(...)`, whose stored profile stands in for the reference).

    `tests` picks a test per column (wasserstein, ks, psi, jensenshannon for numbers;
    jensenshannon, chisquare, z, psi for categories); `thresholds` overrides the limit
    per test; the dataset drifted when at least `drift_share` of the columns did."""
    reference = _reference(reference)
    current = _current(current, columns)
    if len(current) == 0:
        raise InvalidInput("the current window has no rows to compare")
    if not 0 < drift_share <= 1:
        raise InvalidInput(f"drift_share must be in (0, 1], got {drift_share}")
    known = (
        reference.columns if isinstance(reference, ReferenceProfile) else [str(c) for c in reference.columns]
    )
    unknown = [c for c in columns or () if c not in known]
    if unknown:
        raise InvalidInput(f"columns {unknown} are not in the reference")
    profile = (
        reference
        if isinstance(reference, ReferenceProfile)
        else build_profile(reference, list(columns) if columns else None, seed)
    )
    if profile.rows == 0:
        raise InvalidInput("the reference has no rows to compare with")
    names = list(columns) if columns is not None else list(profile.columns)
    limits = {**THRESHOLDS, **(thresholds or {})}
    rng = np.random.default_rng(seed)
    result = DriftResult([], 0.0, drift_share, profile.rows, len(current))
    extra = [str(c) for c in current.columns if str(c) not in profile.columns]
    if extra:
        result.warnings.append(f"columns {extra} are new: not in the reference, not tested")
    for name in names:
        chosen = (tests or {}).get(name)
        result.columns.append(
            _column_drift(
                name, profile.columns[name], current, profile.rows, chosen, limits, rng, result.warnings
            )
        )
    tested = [c for c in result.columns if c.statistic is not None or c.drifted]
    result.share = sum(c.drifted for c in tested) / len(tested) if tested else 0.0
    return result


def _reference(reference: Any) -> pd.DataFrame | ReferenceProfile:
    if isinstance(reference, pd.DataFrame | ReferenceProfile):
        return reference
    if callable(getattr(reference, "profile", None)):  # a registered dataset: its stored profile
        profile: ReferenceProfile = reference.profile()
        return profile
    if callable(getattr(reference, "to_pandas", None)):
        frame: pd.DataFrame = reference.to_pandas()
        return frame
    raise InvalidInput(
        f"the reference is a {type(reference).__name__}: give a DataFrame, an Arrow table or a dataset"
    )


def _current(current: Any, columns: Sequence[str] | None) -> pd.DataFrame:
    if isinstance(current, pd.DataFrame):
        return current
    if callable(getattr(current, "profile", None)):  # a registered dataset: read only what is compared
        wanted = None if columns is None else [c for c in columns if c in current.schema]
        frame: pd.DataFrame = current.to_pandas(wanted)
        return frame
    if callable(getattr(current, "to_pandas", None)):
        frame = current.to_pandas()
        return frame
    raise InvalidInput(
        f"the current data is a {type(current).__name__}: give a DataFrame, an Arrow table or a dataset"
    )


def _column_drift(
    name: str,
    reference: NumericProfile | CategoricalProfile,
    current: pd.DataFrame,
    rows: int,
    chosen: str | None,
    limits: Mapping[str, float],
    rng: np.random.Generator,
    warnings: list[str],
) -> ColumnDrift:
    kind = reference.kind
    test = chosen or _default_test(reference, rows)
    allowed = NUMERIC_TESTS if kind == "numeric" else CATEGORICAL_TESTS
    if test not in allowed:
        raise InvalidInput(f"test {test!r} does not apply to {kind} column {name!r}; use one of {allowed}")
    threshold = limits[test]
    if name not in current.columns:
        warnings.append(f"column {name!r} is missing from the current data")
        return ColumnDrift(name, kind, "presence", None, threshold, True, "missing from the current data")
    if reference.count == 0:
        warnings.append(f"column {name!r} has no values in the reference: not tested")
        return ColumnDrift(name, kind, test, None, threshold, False, "no reference values")
    series = current[name]
    if isinstance(reference, NumericProfile):
        return _numeric(name, reference, series, test, threshold, rng, warnings)
    return _categorical(name, reference, series, test, threshold)


def _numeric(
    name: str,
    reference: NumericProfile,
    series: pd.Series,
    test: str,
    threshold: float,
    rng: np.random.Generator,
    warnings: list[str],
) -> ColumnDrift:
    if series.dtype.kind not in "iufb":
        coerced = pd.to_numeric(series, errors="coerce")
        if coerced.notna().sum() < series.notna().sum():
            warnings.append(f"column {name!r} is no longer numeric")
            return ColumnDrift(name, "numeric", test, None, threshold, True, "values are no longer numbers")
        series = coerced
    values = numeric_values(series)
    if len(values) == 0:
        warnings.append(f"column {name!r} has only missing values in the current data")
        return ColumnDrift(name, "numeric", test, None, threshold, True, "all values missing")
    if test == "wasserstein":
        statistic = stats.wasserstein_normed(reference, values)
    elif test == "psi":
        statistic = stats.psi_numeric(reference, values)
    elif test == "jensenshannon":
        statistic = stats.jensen_shannon_numeric(reference, values)
    else:
        statistic = stats.ks_pvalue(reference, values, rng, SAMPLE)
    drifted = statistic < threshold if test in P_VALUE_TESTS else statistic >= threshold
    detail = "constant in the reference" if reference.std == 0 else ""
    return ColumnDrift(name, "numeric", test, statistic, threshold, bool(drifted), detail)


def _categorical(
    name: str, reference: CategoricalProfile, series: pd.Series, test: str, threshold: float
) -> ColumnDrift:
    counts = category_counts(series)
    if not counts:
        return ColumnDrift(name, "categorical", test, None, threshold, True, "all values missing")
    unseen = sorted(set(counts) - set(reference.frequencies) - {OTHER})
    if test == "jensenshannon":
        statistic = stats.jensen_shannon_categorical(reference, counts)
    elif test == "psi":
        statistic = stats.psi_categorical(reference, counts)
    elif test == "z":
        statistic = stats.z_test_pvalue(reference, counts)
    else:
        statistic = stats.chi_square_pvalue(reference, counts)
    drifted = statistic < threshold if test in P_VALUE_TESTS else statistic >= threshold
    detail = f"unseen categories: {unseen[:10]}" + (" ..." if len(unseen) > 10 else "") if unseen else ""
    return ColumnDrift(name, "categorical", test, statistic, threshold, bool(drifted), detail)
