"""A deployment's traffic over time, from its prediction log: per time bucket, arm and model
version, the requests answered, the requests refused and latency quantiles.

DuckDB groups the Parquet files as it streams them, so memory stays bounded whatever the
log's size; the bucket width grows with the span asked for, so a chart gets at most
`buckets` points per line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loopline.artifacts.tables import TableArea
from loopline.core.clock import now_ms
from loopline.predictions.log import ERRORS, PREDICTIONS
from loopline.predictions.reader import LogReader

# Bucket widths a person reads at a glance: seconds, minutes, hours, days.
WIDTHS_MS = [
    s * 1000
    for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
]


@dataclass
class TrafficPoint:
    """One bucket of one arm and version: `at_ms` is the bucket's start; latency quantiles are
    None in a bucket with no answer."""

    at_ms: int
    arm: str
    version: int | None
    requests: int
    errors: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None


@dataclass
class TrafficSeries:
    """A deployment's traffic in buckets of `bucket_ms`, oldest first."""

    deployment: str
    bucket_ms: int
    points: list[TrafficPoint] = field(default_factory=list)


def bucket_width(span_ms: int, buckets: int) -> int:
    """The narrowest readable width that cuts `span_ms` into at most `buckets` buckets."""
    wanted = span_ms / max(buckets, 1)
    for width in WIDTHS_MS:
        if width >= wanted:
            return width
    return math.ceil(wanted / WIDTHS_MS[-1]) * WIDTHS_MS[-1]


def traffic_series(
    tables: TableArea, deployment: str, since_ms: int | None = None, buckets: int = 120
) -> TrafficSeries:
    """The traffic of `deployment` since `since_ms` (all of its log by default), in at most
    `buckets` buckets per arm and version. Shadow arms count the copies they answered."""
    con = LogReader(tables, deployment, since_ms).connect()
    try:
        first, last = con.execute(
            f"SELECT min(at_ms), max(at_ms) FROM (SELECT at_ms FROM {PREDICTIONS} UNION ALL "
            f"SELECT at_ms FROM {ERRORS})"
        ).fetchone()
        if first is None:
            return TrafficSeries(deployment, bucket_width(0, buckets))
        # The resolution fits the traffic there is (the reader leaves out what came before
        # `since_ms`), up to now, so a young deployment is not one bucket wide.
        width = bucket_width(max(int(last), now_ms()) - int(first), buckets)
        answered = con.execute(
            f"""SELECT at_ms // $w * $w AS at, arm, version, count(*),
                       quantile_cont(latency_ms, [0.5, 0.95, 0.99])
                FROM {PREDICTIONS} WHERE "row" = 0 GROUP BY ALL""",
            {"w": width},
        ).fetchall()
        refused = con.execute(
            f"SELECT at_ms // $w * $w AS at, arm, version, count(*) FROM {ERRORS} GROUP BY ALL", {"w": width}
        ).fetchall()
    finally:
        con.close()
    points: dict[tuple[int, str, int | None], TrafficPoint] = {}
    for at, arm, version, count, quantiles in answered:
        p50, p95, p99 = (_number(q) for q in (quantiles or [None] * 3))
        points[(int(at), arm or "", version)] = TrafficPoint(
            int(at), arm or "", version, int(count), 0, p50, p95, p99
        )
    for at, arm, version, count in refused:
        key = (int(at), arm or "", version)
        point = points.setdefault(key, TrafficPoint(*key, 0, 0, None, None, None))
        point.errors = int(count)
    ordered = sorted(points.values(), key=lambda p: (p.at_ms, p.arm, p.version or 0))
    return TrafficSeries(deployment, width, ordered)


def _number(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
