"""Reference profiles: everything a drift test needs from the reference data, computed in
one pass when the reference is registered, so that checking a window never re-reads it.

Numeric columns keep uniform fine bins (Wasserstein, Jensen-Shannon), decile bins (PSI),
moments, and a bounded sorted sample (KS on large data); categorical columns keep their
value frequencies. Profiles are plain JSON once stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

FINE_BINS = 2000  # uniform bins over the reference range: Wasserstein within a few 0.1% of exact
PSI_BINS = 10
SAMPLE = 20_000  # KS and fallbacks: enough that sampling noise sits far below any sane threshold
MAX_CATEGORIES = 1000  # beyond this the rest counts as one "other" value
FEW_VALUES = 5  # a number with this few distinct values is tested as a category (as Evidently does)
OTHER = "\x00other"


@dataclass
class NumericProfile:
    count: int
    nulls: int
    mean: float
    std: float
    minimum: float
    maximum: float
    fine_counts: np.ndarray  # FINE_BINS counts over [minimum, maximum]
    psi_edges: np.ndarray  # inner decile edges
    psi_counts: np.ndarray
    sample: np.ndarray  # sorted

    kind = "numeric"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls,
            "mean": self.mean,
            "std": self.std,
            "min": self.minimum,
            "max": self.maximum,
            "fine_counts": self.fine_counts.tolist(),
            "psi_edges": self.psi_edges.tolist(),
            "psi_counts": self.psi_counts.tolist(),
            "sample": self.sample.tolist(),
        }


@dataclass
class CategoricalProfile:
    count: int
    nulls: int
    frequencies: dict[str, int]

    kind = "categorical"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "nulls": self.nulls, "frequencies": self.frequencies}


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass
class ReferenceProfile:
    rows: int
    columns: dict[str, ColumnProfile] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": {name: c.to_dict() for name, c in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        columns: dict[str, ColumnProfile] = {}
        for name, c in data["columns"].items():
            if c["kind"] == "numeric":
                columns[name] = NumericProfile(
                    c["count"], c["nulls"], c["mean"], c["std"], c["min"], c["max"],
                    np.asarray(c["fine_counts"], dtype=np.int64), np.asarray(c["psi_edges"], dtype=float),
                    np.asarray(c["psi_counts"], dtype=np.int64), np.asarray(c["sample"], dtype=float),
                )  # fmt: skip
            else:
                columns[name] = CategoricalProfile(c["count"], c["nulls"], dict(c["frequencies"]))
        return cls(int(data["rows"]), columns)


def is_numeric(series: pd.Series) -> bool:
    return series.dtype.kind in "iuf" and series.dtype.kind != "b"


def numeric_values(series: pd.Series) -> np.ndarray:
    """The non-null values as float64, without a copy when the column allows it."""
    values = (
        series.to_numpy(dtype=np.float64, na_value=np.nan)
        if series.hasnans
        else series.to_numpy(dtype=np.float64)
    )
    return values[~np.isnan(values)] if series.hasnans else values


def category_counts(series: pd.Series) -> dict[str, int]:
    counts = series.value_counts(dropna=True)  # counted as they are, named as text after
    if len(counts) > MAX_CATEGORIES:
        top = counts.iloc[:MAX_CATEGORIES]
        return {**{str(k): int(v) for k, v in top.items()}, OTHER: int(counts.iloc[MAX_CATEGORIES:].sum())}
    return {str(k): int(v) for k, v in counts.items()}


def fine_range(low: float, high: float) -> tuple[float, float]:
    """The span of the fine bins; a constant column gets a unit-wide one."""
    return low, (high if high > low else low + 1)


def profile_numeric(series: pd.Series, rng: np.random.Generator) -> NumericProfile:
    values = numeric_values(series)
    nulls = len(series) - len(values)
    if len(values) == 0:
        empty = np.zeros(0)
        return NumericProfile(
            0,
            nulls,
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            np.zeros(FINE_BINS, np.int64),
            empty,
            np.zeros(0, np.int64),
            empty,
        )
    low, high = float(values.min()), float(values.max())
    top = fine_range(low, high)[1]
    fine = np.histogram(values, bins=FINE_BINS, range=(low, top))[0]
    # Decile edges read off the fine bins (within 1/FINE_BINS of the range of exact ones),
    # so that PSI needs neither a sort nor a second pass.
    cumulative = np.cumsum(fine)
    cuts = np.unique(
        np.searchsorted(cumulative, len(values) * np.arange(1, PSI_BINS) / PSI_BINS, side="left") + 1
    )
    cuts = cuts[(cuts > 0) & (cuts < FINE_BINS)]
    edges = low + cuts * (top - low) / FINE_BINS
    psi_counts = np.add.reduceat(fine, np.concatenate([[0], cuts]))
    sample = values if len(values) <= SAMPLE else rng.choice(values, SAMPLE, replace=False)
    return NumericProfile(
        count=len(values),
        nulls=nulls,
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        minimum=low,
        maximum=high,
        fine_counts=fine.astype(np.int64),
        psi_edges=edges,
        psi_counts=psi_counts.astype(np.int64),
        sample=np.sort(sample),
    )


def build_profile(frame: pd.DataFrame, columns: list[str] | None = None, seed: int = 0) -> ReferenceProfile:
    """The reference profile of `frame` (of `columns`, by default all of them)."""
    rng = np.random.default_rng(seed)
    profile = ReferenceProfile(len(frame))
    for name in columns or [str(c) for c in frame.columns]:
        series = frame[name]
        if is_numeric(series):
            numeric = profile_numeric(series, rng)
            if len(np.unique(numeric.sample)) > FEW_VALUES or numeric.count == 0:
                profile.columns[name] = numeric
                continue
        counts = category_counts(series)
        profile.columns[name] = CategoricalProfile(
            int(sum(counts.values())), int(series.isna().sum()), counts
        )
    return profile
