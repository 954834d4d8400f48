"""Training/serving skew: feature values as served compared with the offline values of the
same entity at the same time. (Freshness, the other health measure, is `services.Freshness`.)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SKEW_EXAMPLES = 5


@dataclass(frozen=True)
class Skew:
    """Served feature values that differ from the offline values for the same entity and time."""

    rows: int  # rows compared
    mismatched_rows: int
    mismatches: dict[str, int]  # per feature column
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        """The share of compared rows with at least one differing feature."""
        return self.mismatched_rows / self.rows if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        """For --json and the REST API."""
        return {
            "rows": self.rows, "mismatched_rows": self.mismatched_rows, "rate": self.rate,
            "mismatches": self.mismatches, "examples": self.examples,
        }  # fmt: skip


def compare(
    served: pd.DataFrame,
    offline: pd.DataFrame,
    columns: Sequence[str],
    keys: Sequence[str],
    defaults: Mapping[str, Any] | None = None,
) -> Skew:
    """Row by row (same order), each feature column served against offline. An offline
    null becomes the feature's default first, as serving does; floats equal within 1e-9."""
    defaults = defaults or {}
    mismatches = dict.fromkeys(columns, 0)
    examples: list[dict[str, Any]] = []
    bad_rows = 0
    for i in range(len(served)):
        row_bad = False
        for column in columns:
            was, expected = served[column].iat[i], offline[column].iat[i]
            if _missing(expected):
                expected = defaults.get(column)
            if _same(was, expected):
                continue
            mismatches[column] += 1
            row_bad = True
            if len(examples) < SKEW_EXAMPLES:
                entity = {k: _plain(served[k].iat[i]) for k in keys}
                examples.append(
                    {"entity": entity, "feature": column, "served": _plain(was), "offline": _plain(expected)}
                )
        bad_rows += row_bad
    return Skew(len(served), bad_rows, {c: n for c, n in mismatches.items() if n}, examples)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _same(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _plain(value: Any) -> Any:
    """A JSON-ready value (numpy scalars and timestamps become Python ones)."""
    if _missing(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
