"""Forecasts and change points of monitored values, on seeded series whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from loopline.monitoring.forecast import HOUR_MS, cusum, forecast
from loopline.specs.monitor import AlertRule

HOURS = [i * HOUR_MS for i in range(24)]


def declining(seed: int, per_hour: float = -0.005, noise: float = 0.004) -> list[float | None]:
    rng = np.random.default_rng(seed)
    return [0.97 + per_hour * i + rng.normal(0, noise) for i in range(24)]


def test_a_declining_value_is_forecast_to_cross_when_its_trend_does() -> None:
    found = forecast(HOURS, declining(0), threshold=0.80, below=True)
    assert found is not None and found.slope_high < 0
    # truth: 0.97 - 0.005 t reaches 0.80 at t = 34 h, 11 h after the newest run (t = 23)
    assert found.crossing_hours == pytest.approx(11, abs=3)
    assert found.crossing_low is not None and found.crossing_low <= 11
    assert found.crossing_high is None or found.crossing_high >= 11
    assert found.holt_slope_per_hour < 0


def test_outlying_runs_do_not_move_the_robust_trend() -> None:
    values = declining(1)
    values[5], values[17] = 0.2, 0.1  # two broken windows
    found = forecast(HOURS, values)
    assert found is not None and found.slope_per_hour == pytest.approx(-0.005, abs=0.001)


def test_a_flat_value_has_no_crossing_and_a_slope_interval_around_zero() -> None:
    found = forecast(HOURS, declining(2, per_hour=0.0), threshold=0.9, below=True)
    assert found is not None and found.slope_low < 0 < found.slope_high


def test_a_value_already_past_the_threshold_crosses_now() -> None:
    found = forecast(HOURS, declining(3), threshold=0.99, below=True)
    assert found is not None and found.crossing_hours == 0


def test_too_few_runs_make_no_forecast() -> None:
    assert forecast(HOURS[:5], declining(4)[:5]) is None
    assert forecast(HOURS, [None] * 24) is None


def test_the_change_point_false_alarm_rate_is_the_one_documented() -> None:
    alarmed = 0
    for seed in range(100):
        values = list(np.random.default_rng(seed).normal(0.9, 0.01, 110))
        alarmed += any(cusum(values[:n], threshold=5.0).changed for n in range(11, 111, 10))
    assert alarmed <= 15  # documented: about 8% within 100 runs


def test_a_shift_is_found_and_dated() -> None:
    rng = np.random.default_rng(5)
    values = list(rng.normal(0.9, 0.01, 40)) + list(rng.normal(0.87, 0.01, 12))  # three sd down
    found = cusum(values, threshold=5.0)
    assert found is not None and found.changed and found.direction == "down"
    assert found.since_run is not None and 30 <= found.since_run <= 44
    assert cusum(values, threshold=5.0, direction="up") is not None
    assert not cusum(values, threshold=5.0, direction="up").changed  # type: ignore[union-attr]


def test_rules_of_each_kind_parse_and_wrong_ones_say_why() -> None:
    forecast_rule = AlertRule(name="f", value="est.accuracy", below=0.85, within="6h")
    assert forecast_rule.kind == "forecast" and forecast_rule.horizon_hours == 6
    assert AlertRule(name="f", value="x", above=1, within="90m").horizon_hours == 1.5
    assert AlertRule(name="c", value="perf.accuracy", change={"direction": "down"}).kind == "change"
    with pytest.raises(ValueError, match="duration such as 90m"):
        AlertRule(name="f", value="x", below=1, within="soon")
    with pytest.raises(ValueError, match="a change rule takes no above"):
        AlertRule(name="c", value="x", below=1, change={})
