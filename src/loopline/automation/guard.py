"""Whether the live champion has left the bounds its loop policy guards (`GuardSpec`):
each bound is judged on an always-valid interval, so that a worker may look at every tick
and a champion inside its bounds is rarely accused."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopline.automation.verdicts import proportion

if TYPE_CHECKING:
    from loopline.predictions.reports import ArmSamples
    from loopline.specs.loop import GuardSpec


def breaches(samples: ArmSamples, guard: GuardSpec, estimated_accuracy: float | None) -> list[str]:
    """Why the champion is past its bounds, one reason per bound (none: it is within)."""
    reasons = []
    if guard.max_error_rate is not None and samples.attempts >= guard.min_requests:
        rate = proportion(samples.errors, samples.attempts, tau=guard.max_error_rate, alpha=guard.alpha)
        if rate.low > guard.max_error_rate:
            reasons.append(
                f"its error rate {rate.estimate:.3f} (interval [{rate.low:.3f}, {rate.high:.3f}] over "
                f"{samples.attempts} requests) is over {guard.max_error_rate:g}"
            )
    labelled = len(samples.scores)
    if guard.min_accuracy is not None and samples.classification and labelled >= guard.min_labels:
        hits = int(samples.scores.sum())
        accuracy = proportion(hits, labelled, tau=max(0.02, 1 - guard.min_accuracy), alpha=guard.alpha)
        if accuracy.high < guard.min_accuracy:
            reasons.append(
                f"its accuracy {accuracy.estimate:.3f} (interval [{accuracy.low:.3f}, {accuracy.high:.3f}] "
                f"over {labelled} labels) is under {guard.min_accuracy:g}"
            )
    if (
        guard.min_estimated_accuracy is not None
        and estimated_accuracy is not None
        and estimated_accuracy < guard.min_estimated_accuracy
    ):
        reasons.append(
            f"its estimated accuracy {estimated_accuracy:.3f} (monitor) is under "
            f"{guard.min_estimated_accuracy:g}"
        )
    return reasons
