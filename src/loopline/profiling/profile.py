"""Reference profiles: everything a drift test needs from the reference data, computed in
one pass when the reference is registered, so that checking a window never re-reads it.

Numeric columns keep uniform fine bins (Wasserstein, Jensen-Shannon), decile bins (PSI),
moments, a bounded sorted sample (KS on large data) and, when they hold at most
MAX_DISTINCT values (integers, prices), those values and their counts, so that distances
on them are exact; categorical columns keep their value frequencies. Profiles are plain
JSON once stored (NaN as null).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

FINE_BINS = 2000  # uniform bins over the reference range
MAX_DISTINCT = 1000  # a numeric column with at most this many values keeps them all, counted
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
    distinct: np.ndarray = field(default_factory=lambda: np.zeros(0))  # sorted; empty when too many
    distinct_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

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
            "distinct": self.distinct.tolist(),
            "distinct_counts": self.distinct_counts.tolist(),
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
    """What drift tests compare a window with: per column quantile bins, histograms, category
    frequencies and a sorted sample, computed once."""

    rows: int
    columns: dict[str, ColumnProfile] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON values (stored gzipped with a dataset version)."""
        return {"rows": self.rows, "columns": {name: c.to_dict() for name, c in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        """The profile `to_dict` wrote."""
        columns: dict[str, ColumnProfile] = {}
        for name, c in data["columns"].items():
            if c["kind"] == "numeric":
                mean, std, low, high = (
                    np.nan if c[k] is None else float(c[k]) for k in ("mean", "std", "min", "max")
                )
                columns[name] = NumericProfile(
                    c["count"], c["nulls"], mean, std, low, high,
                    np.asarray(c["fine_counts"], dtype=np.int64), np.asarray(c["psi_edges"], dtype=float),
                    np.asarray(c["psi_counts"], dtype=np.int64), np.asarray(c["sample"], dtype=float),
                    np.asarray(c.get("distinct", []), dtype=float),
                    np.asarray(c.get("distinct_counts", []), dtype=np.int64),
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


def category_key(value: Any) -> str:
    """A category as text, numbers spelled one way: 1, 1.0 and numpy's 1 are all "1", so
    a column logged as doubles still matches a reference read as integers."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def category_counts(series: pd.Series) -> dict[str, int]:
    counts = series.value_counts(dropna=True)  # counted as they are, named as text after
    if len(counts) > MAX_CATEGORIES:
        top = counts.iloc[:MAX_CATEGORIES]
        top_counts = {category_key(k): int(v) for k, v in top.items()}
        return {**top_counts, OTHER: int(counts.iloc[MAX_CATEGORIES:].sum())}
    found: dict[str, int] = {}
    for k, v in counts.items():
        key = category_key(k)
        found[key] = found.get(key, 0) + int(v)
    return found


def fine_range(low: float, high: float) -> tuple[float, float]:
    """The span of the fine bins; a constant column gets a unit-wide one."""
    return low, (high if high > low else low + 1)


def fine_edges(low: float, top: float) -> np.ndarray:
    """The edges of the fine bins over [low, top], as `np.histogram` computes them."""
    return np.linspace(low, top, FINE_BINS + 1)


class _NumericAccumulator:
    """Moments (merged as Chan et al.), range and a uniform sample over batches; then bins."""

    def __init__(self) -> None:
        self.count = self.nulls = 0
        self.mean = self.m2 = 0.0
        self.low, self.high = np.inf, -np.inf
        self.sample = np.zeros(0)
        self.fine = np.zeros(FINE_BINS, np.int64)
        self.values: dict[Any, int] = {}  # filled instead of `fine` when few distinct values
        self.distinct: pd.Series | None = pd.Series(dtype=np.int64)  # counts per value; None when too many
        self.always_numeric = False

    def first_pass(self, values: np.ndarray, nulls: int, rng: np.random.Generator) -> None:
        self.nulls += nulls
        n = len(values)
        if n == 0:
            return
        mean = float(values.mean())
        m2 = float(((values - mean) ** 2).sum()) if n > 1 else 0.0
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta**2 * self.count * n / total
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))
        # A uniform sample of everything so far: how many of the kept values come from this
        # batch follows the hypergeometric law, then each side is sampled uniformly.
        if total <= SAMPLE:
            self.sample = np.concatenate([self.sample, values])
        else:
            take = int(rng.hypergeometric(n, self.count, SAMPLE))
            kept = rng.choice(self.sample, SAMPLE - take, replace=False) if take < SAMPLE else self.sample[:0]
            self.sample = np.concatenate([kept, rng.choice(values, take, replace=False)])
        self.count = total

    @functools.cached_property
    def sample_distinct(self) -> int:
        """How many distinct values the sample holds (read after the first pass)."""
        return len(np.unique(self.sample))

    @property
    def few_values(self) -> bool:
        return not self.always_numeric and self.count > 0 and self.sample_distinct <= FEW_VALUES

    def second_pass(self, series: pd.Series, values: np.ndarray) -> None:
        if self.few_values:
            for key, n in series.value_counts(dropna=True).items():
                self.values[key] = self.values.get(key, 0) + int(n)
            return
        if not len(values):
            return
        self.fine += np.histogram(values, bins=FINE_BINS, range=fine_range(self.low, self.high))[0]
        if self.distinct is not None and self.sample_distinct <= MAX_DISTINCT:
            batch = pd.Series(values, copy=False).value_counts(sort=False)
            merged = self.distinct.add(batch, fill_value=0)
            self.distinct = merged if len(merged) <= MAX_DISTINCT else None

    def result(self) -> ColumnProfile:
        if self.few_values:
            counts: dict[str, int] = {}
            for k, v in sorted(self.values.items(), key=lambda kv: -kv[1]):
                counts[category_key(k)] = counts.get(category_key(k), 0) + v
            return CategoricalProfile(self.count, self.nulls, counts)
        if self.count == 0:
            empty = np.zeros(0)
            return NumericProfile(
                0, self.nulls, np.nan, np.nan, np.nan, np.nan,
                np.zeros(FINE_BINS, np.int64), empty, np.zeros(0, np.int64), empty,
            )  # fmt: skip
        low, top = fine_range(self.low, self.high)
        # Decile edges read off the fine bins (within 1/FINE_BINS of the range of exact ones),
        # so that PSI needs neither a sort nor another pass.
        cumulative = np.cumsum(self.fine)
        cuts = np.unique(
            np.searchsorted(cumulative, self.count * np.arange(1, PSI_BINS) / PSI_BINS, side="left") + 1
        )
        cuts = cuts[(cuts > 0) & (cuts < FINE_BINS)]
        distinct = (pd.Series(dtype=np.int64) if self.distinct is None else self.distinct).sort_index()
        return NumericProfile(
            count=self.count,
            nulls=self.nulls,
            mean=self.mean,
            std=float(np.sqrt(self.m2 / (self.count - 1))) if self.count > 1 else 0.0,
            minimum=self.low,
            maximum=self.high,
            fine_counts=self.fine,
            psi_edges=fine_edges(low, top)[cuts],  # the fine bins' own edges: PSI bins agree with them
            psi_counts=np.add.reduceat(self.fine, np.concatenate([[0], cuts])).astype(np.int64),
            sample=np.sort(self.sample),
            distinct=distinct.index.to_numpy(dtype=float),
            distinct_counts=distinct.to_numpy(dtype=np.int64),
        )


class _CategoryAccumulator:
    """Value counts merged over batches. Past PRUNE_AT distinct values only the most frequent
    are kept and the rest is counted as one "other" value: counts of the rare stay approximate."""

    PRUNE_AT = 50 * MAX_CATEGORIES

    def __init__(self) -> None:
        self.count = self.nulls = self.other = 0
        self.counts: pd.Series | None = None

    def add(self, series: pd.Series) -> None:
        batch = series.value_counts(dropna=True)
        # Counted as they are, then named as text; only floats need the careful spelling.
        names = batch.index.map(category_key) if batch.index.dtype.kind == "f" else batch.index.astype(str)
        batch = batch.groupby(names).sum() if not names.is_unique else batch.set_axis(names)
        self.nulls += len(series) - int(batch.sum())
        self.count += int(batch.sum())
        self.counts = batch if self.counts is None else self.counts.add(batch, fill_value=0)
        if len(self.counts) > self.PRUNE_AT:
            self.counts = self.counts.sort_values(ascending=False)
            self.other += int(self.counts.iloc[self.PRUNE_AT // 5 :].sum())
            self.counts = self.counts.iloc[: self.PRUNE_AT // 5]

    def result(self) -> CategoricalProfile:
        counts = (
            pd.Series(dtype=np.int64) if self.counts is None else self.counts.sort_values(ascending=False)
        )
        frequencies = {str(k): int(v) for k, v in counts.iloc[:MAX_CATEGORIES].items()}
        rest = self.other + int(counts.iloc[MAX_CATEGORIES:].sum())
        if rest:
            frequencies[OTHER] = rest
        return CategoricalProfile(self.count, self.nulls, frequencies)


def profile_batches(
    batches: Callable[[], Iterable[pd.DataFrame]], columns: Sequence[str] | None = None, seed: int = 0
) -> ReferenceProfile:
    """The reference profile of the frames `batches()` yields, in two passes over them
    (ranges and samples first, then the fine bins) and memory bounded by the profile."""
    rng = np.random.default_rng(seed)
    numeric: dict[str, _NumericAccumulator] = {}
    categorical: dict[str, _CategoryAccumulator] = {}
    rows = 0
    names: list[str] = []
    for frame in batches():
        if not names:
            names = list(columns) if columns else [str(c) for c in frame.columns]
            for name in names:
                if is_numeric(frame[name]):
                    numeric[name] = _NumericAccumulator()
                else:
                    categorical[name] = _CategoryAccumulator()
        rows += len(frame)
        for name, numbers in numeric.items():
            values = numeric_values(frame[name])
            numbers.first_pass(values, len(frame) - len(values), rng)
        for name, categories in categorical.items():
            categories.add(frame[name])
    if numeric and rows:
        for frame in batches():
            for name, numbers in numeric.items():
                numbers.second_pass(frame[name], numeric_values(frame[name]))
    profile = ReferenceProfile(rows)
    for name in names:
        profile.columns[name] = (numeric.get(name) or categorical[name]).result()
    return profile


def build_profile(
    frame: pd.DataFrame, columns: Sequence[str] | None = None, seed: int = 0
) -> ReferenceProfile:
    """The reference profile of `frame` (of `columns`, by default all of them)."""
    if not len(frame.columns):
        return ReferenceProfile(len(frame))
    return profile_batches(lambda: [frame], columns, seed)


def profile_numeric(series: pd.Series, rng: np.random.Generator) -> NumericProfile:
    """One column profiled as numbers, however few distinct values it has."""
    numbers = _NumericAccumulator()
    numbers.always_numeric = True
    values = numeric_values(series)
    numbers.first_pass(values, len(series) - len(values), rng)
    numbers.second_pass(series, values)
    result = numbers.result()
    assert isinstance(result, NumericProfile)
    return result
