"""The canary's checks on evidence built from seeded random numbers (no clock, no server):
noise never rolls a challenger back, real harm does, and promotion needs non-inferiority."""

from __future__ import annotations

import numpy as np

from loopline.automation.canary import Outcome, judge, needed
from loopline.automation.verdicts import Verdict
from loopline.predictions.reports import ArmSamples
from loopline.specs.loop import RolloutSpec

ROLLOUT = RolloutSpec(min_requests=200, min_labels=50)


def busy_latencies(rng: np.random.Generator, n: int, shift_ms: float = 0.0) -> np.ndarray:
    """Milliseconds on a shared host: lognormal around 2 ms, and one request in ten stalled
    for up to 40 ms by another process."""
    stalls = rng.uniform(0, 40, n) * (rng.random(n) < 0.1)
    return rng.lognormal(np.log(2.0), 0.5, n) + stalls + shift_ms


def arm(
    rng: np.random.Generator, n: int, *, shift_ms: float = 0.0, error_rate: float = 0.0,
    accuracy: float = 0.9, labels: int | None = None,
) -> ArmSamples:  # fmt: skip
    errors = int(rng.binomial(n, error_rate))
    scores = (rng.random(labels if labels is not None else n) < accuracy).astype(float)
    return ArmSamples("arm", busy_latencies(rng, n - errors, shift_ms), errors, n, scores, True)


def verdicts(
    champion: ArmSamples, challenger: ArmSamples, rollout: RolloutSpec = ROLLOUT
) -> dict[str, Verdict]:
    return {c.metric: c.verdict for c in judge(champion, challenger, rollout).checks}


def test_an_equal_challenger_on_a_busy_host_is_never_harmful_at_any_look() -> None:
    harmful = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        for looks in range(1, 11):  # a look every 60 challenger requests
            found = verdicts(arm(rng, 240 * looks), arm(rng, 60 * looks))
            harmful += Verdict.HARMFUL in found.values()
    assert harmful == 0


def test_a_latency_regression_under_the_floor_never_rolls_back() -> None:
    rng = np.random.default_rng(1)
    judged = judge(arm(rng, 20_000), arm(rng, 5_000, shift_ms=4.0), ROLLOUT)  # certain, but 4 ms < 10 ms
    latency = next(c for c in judged.checks if c.metric == "latency_ms")
    assert latency.low > 3.0 and latency.verdict is not Verdict.HARMFUL
    assert judged.outcome(ROLLOUT) is not Outcome.ROLLBACK


def test_a_real_latency_regression_is_rolled_back_with_its_evidence() -> None:
    rng = np.random.default_rng(2)
    judged = judge(arm(rng, 400), arm(rng, 100, shift_ms=20.0), ROLLOUT)
    latency = next(c for c in judged.checks if c.metric == "latency_ms")
    assert latency.verdict is Verdict.HARMFUL and latency.extra["mann_whitney_p"] < 0.01
    assert latency.margin == 10.0 and latency.low > 10.0
    assert judged.outcome(ROLLOUT) is Outcome.ROLLBACK
    assert "latency_ms: +" in latency.describe() and "harmful" in latency.describe()


def test_an_error_spike_rolls_back_before_min_requests() -> None:
    rng = np.random.default_rng(3)
    judged = judge(arm(rng, 400), arm(rng, 60, error_rate=0.3), ROLLOUT)
    assert judged.requests < ROLLOUT.min_requests
    assert [c.metric for c in judged.harmful] == ["error_rate"]
    assert judged.outcome(ROLLOUT) is Outcome.ROLLBACK


def test_a_less_accurate_challenger_is_harmful_and_a_better_one_non_inferior() -> None:
    rng = np.random.default_rng(4)
    worse = verdicts(arm(rng, 2000, accuracy=0.95), arm(rng, 500, accuracy=0.75))
    assert worse["accuracy"] is Verdict.HARMFUL
    better = verdicts(arm(rng, 2000, accuracy=0.8), arm(rng, 500, accuracy=0.97))
    assert better["accuracy"] is Verdict.NON_INFERIOR


def test_promotion_needs_min_requests_and_every_check_non_inferior() -> None:
    rng = np.random.default_rng(5)
    early = judge(arm(rng, 400, accuracy=0.8), arm(rng, 100, accuracy=0.97), ROLLOUT)
    assert early.outcome(ROLLOUT) is Outcome.WATCH  # 100 < 200 requests
    enough = judge(arm(rng, 4000, accuracy=0.8), arm(rng, 1000, accuracy=0.97), ROLLOUT)
    assert not enough.undecided and enough.outcome(ROLLOUT) is Outcome.PROMOTE
    unlabelled = judge(arm(rng, 4000, labels=10), arm(rng, 1000, labels=10), ROLLOUT)
    assert [c.metric for c in unlabelled.undecided] == ["accuracy"]  # no harm shown is not enough
    assert unlabelled.outcome(ROLLOUT) is Outcome.WATCH


def test_the_final_look_is_narrower_than_the_always_valid_one() -> None:
    rng = np.random.default_rng(6)
    champion, challenger = arm(rng, 1200), arm(rng, 300)
    always, final = judge(champion, challenger, ROLLOUT), judge(champion, challenger, ROLLOUT, final=True)
    for a, f in zip(always.checks, final.checks, strict=True):
        assert f.high - f.low < a.high - a.low and "fixed-sample" in f.rule and "always-valid" in a.rule


def test_a_shadow_is_judged_on_paired_differences() -> None:
    rng = np.random.default_rng(7)
    primary = arm(rng, 600, accuracy=0.8)
    correct_primary = rng.random(600) < 0.8
    correct_shadow = correct_primary | (rng.random(600) < 0.5)  # right wherever the primary is, and more
    shadow = arm(rng, 600)
    shadow.paired = correct_shadow.astype(float) - correct_primary.astype(float)
    accuracy = next(c for c in judge(primary, shadow, ROLLOUT).checks if c.metric == "accuracy")
    assert accuracy.verdict is Verdict.NON_INFERIOR and accuracy.estimate > 0.05


def test_the_canary_says_what_it_needs() -> None:
    text = needed(RolloutSpec(percent=20, max_accuracy_drop=0.02), 0.95, 0.0)
    assert text.startswith("about ") and "requests to detect a 2% error-rate rise" in text
    labels = int(text.split(" and ")[1].split()[0])
    assert "labels to detect a 2-point accuracy drop" in text and labels > 1000
