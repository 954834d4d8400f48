"""The per-column summary people read (`loopline datasets show`): type, count, nulls,
distinct, range, moments, quantiles, a histogram and the top categories.

Moments, histograms and categories come from the drift reference profile, already built;
quantiles from its fine bins (to within 1/2000 of the range); distinct counts and ranges
from one DuckDB query over the stored Parquet file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from loopline.profiling.profile import (
    FINE_BINS,
    OTHER,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    fine_range,
)

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 20
TOP_CATEGORIES = 10


def quote(name: str) -> str:
    """A column name as a SQL identifier: whatever it contains, it stays a name."""
    return '"' + name.replace('"', '""') + '"'


def summarize(path: Path, schema: pa.Schema, profile: ReferenceProfile) -> list[dict[str, Any]]:
    import duckdb

    plain = [f for f in schema if not pa.types.is_nested(f.type)]
    ranged = [f.name for f in plain if not pa.types.is_boolean(f.type) and not pa.types.is_binary(f.type)]
    selects = [f"approx_count_distinct({quote(f.name)})" for f in plain]
    selects += [f"CAST(min({quote(n)}) AS VARCHAR), CAST(max({quote(n)}) AS VARCHAR)" for n in ranged]
    found: dict[str, Any] = {}
    if selects:
        with duckdb.connect() as con:
            row = con.execute(f"SELECT {', '.join(selects)} FROM read_parquet(?)", [str(path)]).fetchone()
        values = iter(row or ())
        found = {f"distinct:{f.name}": next(values) for f in plain}
        for name in ranged:
            found[f"min:{name}"], found[f"max:{name}"] = next(values), next(values)
    return [_column(f, profile, found) for f in schema]


def _column(field: pa.Field, profile: ReferenceProfile, found: dict[str, Any]) -> dict[str, Any]:
    name = field.name
    if name not in profile.columns:  # nested values: stored and hashed, not profiled
        return {"name": name, "type": str(field.type), "kind": "nested"}
    column = profile.columns[name]
    summary: dict[str, Any] = {
        "name": name,
        "type": str(field.type),
        "kind": column.kind,
        "count": column.count,
        "nulls": column.nulls,
        "distinct": found.get(f"distinct:{name}"),
        "min": found.get(f"min:{name}"),
        "max": found.get(f"max:{name}"),
    }
    if isinstance(column, CategoricalProfile):
        top = [(k, v) for k, v in column.frequencies.items() if k != OTHER][:TOP_CATEGORIES]
        summary["top"] = [[k, v] for k, v in top]
    elif column.count:
        low, top_edge = fine_range(column.minimum, column.maximum)
        counts = column.fine_counts.reshape(HISTOGRAM_BINS, FINE_BINS // HISTOGRAM_BINS).sum(axis=1)
        summary.update(
            mean=column.mean,
            std=column.std,
            quantiles=_quantiles(column),
            histogram={
                "edges": np.linspace(low, top_edge, HISTOGRAM_BINS + 1).tolist(),
                "counts": counts.tolist(),
            },
        )
    return summary


def _quantiles(column: NumericProfile) -> dict[str, float]:
    """Quantiles read off the fine bins, interpolating linearly inside a bin."""
    low, top = fine_range(column.minimum, column.maximum)
    edges = np.linspace(low, top, FINE_BINS + 1)
    cumulative = np.concatenate([[0], np.cumsum(column.fine_counts)]) / column.count
    found = np.interp(QUANTILES, cumulative, edges)
    return {
        str(q): float(min(max(v, column.minimum), column.maximum))
        for q, v in zip(QUANTILES, found, strict=True)
    }
