"""The canary verdict's latency gate, on reports built by hand (no clock involved)."""

from __future__ import annotations

from loopline.automation.loops import _canary_verdict
from loopline.predictions.reports import ArmReport, DeploymentReport
from loopline.specs.loop import RolloutSpec


def arm(name: str, p95_ms: float, requests: int = 100) -> ArmReport:
    """An arm with no errors and the given p95 latency."""
    return ArmReport(name, [1], requests, 0, 0.0, (0.0, 0.03), p95_ms / 2, (0.0, 1.0), p95_ms)


def verdict(canary_p95_ms: float, requests: int = 100) -> tuple[int, str | None]:
    report = DeploymentReport("d", "canary", [arm("stable", 10.0), arm("canary", canary_p95_ms, requests)])
    return _canary_verdict(report, RolloutSpec(min_requests=60, max_latency_ratio=2.0))


def test_a_canary_over_the_latency_ratio_is_refused() -> None:
    served, problem = verdict(25.0)
    assert served == 100 and problem is not None and "p95 latency 25.0 ms is over 2.0x" in problem


def test_a_canary_within_the_ratio_passes() -> None:
    assert verdict(19.0) == (100, None)


def test_latency_is_not_judged_before_the_sample_is_full() -> None:
    assert verdict(25.0, requests=30) == (30, None)
