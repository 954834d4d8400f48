"""A metric's history downsampled by the store: what the UI's charts draw."""

from __future__ import annotations

import math
import random

import pytest

from loopline.core.entities import Metric
from loopline.core.errors import InvalidInput
from loopline.services.tracking import Tracking
from loopline.store.metric_series import RAW_LIMIT


def _log(service: Tracking, run_id: str, values: list[float], start_step: int = 0) -> None:
    metrics = [Metric("loss", v, start_step + i, 1_700_000_000_000 + 10 * i) for i, v in enumerate(values)]
    service.log_batch(run_id, metrics)


def test_a_long_history_becomes_buckets_of_min_max_and_newest_value(service: Tracking) -> None:
    run = service.start_run("series")
    values = [math.sin(i / 50) + (i % 7) / 10 for i in range(5000)]
    _log(service, run.id, values)
    series = service.metric_series(run.id, "loss", buckets=100)
    assert series.points == 5000 and len(series.buckets) == 100
    assert sum(b.count for b in series.buckets) == 5000
    for bucket in series.buckets:  # each bucket is exactly its stretch of the history
        stretch = values[bucket.x_first : bucket.x_last + 1]
        assert bucket.count == len(stretch)
        assert bucket.min == pytest.approx(min(stretch)) and bucket.max == pytest.approx(max(stretch))
        assert bucket.last == pytest.approx(stretch[-1])


def test_a_short_history_comes_back_point_by_point(service: Tracking) -> None:
    run = service.start_run("series")
    _log(service, run.id, [3.0, 2.0, math.nan, 1.0])
    series = service.metric_series(run.id, "loss", buckets=300)
    assert [b.x_last for b in series.buckets] == [0, 1, 2, 3]
    assert [b.last for b in series.buckets][:2] == [3.0, 2.0]
    assert series.buckets[2].last is None or math.isnan(series.buckets[2].last)  # NaN has no number


def test_zooming_fetches_the_finer_range(service: Tracking) -> None:
    run = service.start_run("series")
    _log(service, run.id, [float(i) for i in range(10_000)])
    zoomed = service.metric_series(run.id, "loss", buckets=300, start=1000, end=1099)
    assert zoomed.points == 100
    assert [b.last for b in zoomed.buckets] == [float(i) for i in range(1000, 1100)]


def test_a_series_by_wall_time(service: Tracking) -> None:
    run = service.start_run("series")
    _log(service, run.id, [float(i) for i in range(1000)])
    by_time = service.metric_series(run.id, "loss", buckets=10, axis="time")
    assert by_time.axis == "time" and by_time.points == 1000
    assert by_time.buckets[0].x_first == 1_700_000_000_000
    assert by_time.buckets[-1].last == 999.0


def test_a_history_longer_than_the_raw_limit_is_read_from_its_rollups(service: Tracking) -> None:
    run = service.start_run("series")
    points = RAW_LIMIT + 30_000
    values = [math.cos(i / 700) * (1 + i % 11) for i in range(points)]
    values[12_345] = math.nan
    order = list(range(points))
    random.Random(3).shuffle(order)  # logged out of order, in many batches
    for chunk in range(0, points, 20_000):
        batch = [Metric("loss", values[i], i, 1_700_000_000_000 + i) for i in order[chunk : chunk + 20_000]]
        service.log_batch(run.id, batch)
    finite = [v for v in values if not math.isnan(v)]
    whole = service.metric_series(run.id, "loss", buckets=300)
    assert whole.points == points and sum(b.count for b in whole.buckets) == points
    assert len(whole.buckets) <= 300
    assert min(b.min for b in whole.buckets if b.min is not None) == pytest.approx(min(finite))
    assert max(b.max for b in whole.buckets if b.max is not None) == pytest.approx(max(finite))
    assert whole.buckets[-1].last == pytest.approx(values[-1]) and whole.buckets[-1].x_last == points - 1
    # a zoom that cuts rollups at both ends is still exact, value for value at its edges
    zoomed = service.metric_series(run.id, "loss", buckets=300, start=1_500, end=70_000)
    assert zoomed.points == 68_501 == sum(b.count for b in zoomed.buckets)
    assert zoomed.buckets[0].x_first == 1_500 and zoomed.buckets[-1].x_last == 70_000
    inside = [v for v in values[1_500:70_001] if not math.isnan(v)]
    assert min(b.min for b in zoomed.buckets if b.min is not None) == pytest.approx(min(inside))
    assert zoomed.buckets[-1].last == pytest.approx(values[70_000])
    by_time = service.metric_series(run.id, "loss", buckets=50, axis="time")
    assert by_time.points == points and len(by_time.buckets) <= 50


def test_bad_series_requests_say_what_is_wrong(service: Tracking) -> None:
    run = service.start_run("series")
    with pytest.raises(InvalidInput, match="axis"):
        service.metric_series(run.id, "loss", axis="epoch")
    with pytest.raises(InvalidInput, match="buckets"):
        service.metric_series(run.id, "loss", buckets=0)
    with pytest.raises(InvalidInput, match="after its end"):
        service.metric_series(run.id, "loss", start=10, end=5)
    assert service.metric_series(run.id, "missing").points == 0
