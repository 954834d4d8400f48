"""The feature values of a monitor run, for a deployment that declares online features.

Drift of the served features needs nothing here: they are logged with the inputs, so the
drift engine tests them against the reference like any input. This adds what only the
feature store knows: how fresh each declared view is against its TTL, how often a feature
was served null (no value and no default), and training/serving skew on a sample of the
window's rows (`Features.skew`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from loopline.core.traffic import FeatureDeclaration
from loopline.predictions.log import ENTITY_PREFIX
from loopline.predictions.window import Window
from loopline.services.features import Freshness

if TYPE_CHECKING:
    from loopline.feature_store.health import Skew


class FeatureHealth(Protocol):
    """What a monitor asks of the feature store (the local `FeatureService`: monitors run
    where the store is)."""

    def freshness(self, refs: Sequence[str] = ()) -> list[Freshness]:
        """How old each view's newest online value is against its TTL."""

    def columns(self, features: Sequence[str], *, full_names: bool = False) -> list[str]:
        """The columns these features come back as."""

    def skew(
        self,
        served: pd.DataFrame,
        features: Sequence[str],
        *,
        defaults: Mapping[str, Any] | None = None,
        full_names: bool = False,
        sample: int | None = 1_000,
    ) -> Skew:
        """Served values compared with offline ones for the same entity and time."""


SKEW_SAMPLE = 200  # rows of the window compared offline per run: one DuckDB join, bounded
FEATURE_VALUES = ["features.stale_views", "features.age_ratio", "features.null_share", "features.skew"]


def feature_values(
    features: FeatureHealth, declared: FeatureDeclaration, window: Window
) -> tuple[dict[str, float | None], dict[str, Any]]:
    """The `features.*` values of one window and the details a report shows."""
    views = list(dict.fromkeys(ref.split(":", 1)[0] for ref in declared.refs))
    freshness = features.freshness(views)
    ratios = [f.age_ratio for f in freshness if f.age_ratio is not None]
    values: dict[str, float | None] = {
        "features.stale_views": float(sum(f.stale for f in freshness)),
        "features.age_ratio": max(ratios) if ratios else None,
        "features.null_share": None,
        "features.skew": None,
    }
    details: dict[str, Any] = {"freshness": [f.to_dict() for f in freshness]}
    frame = window.rows
    columns = [c for c in features.columns(declared.refs, full_names=declared.full_names) if c in frame]
    if frame.empty or not columns:
        return values, details
    nulls = {c: float(frame[c].isna().mean()) for c in columns}
    values["features.null_share"] = max(nulls.values())
    details["null_share"] = nulls
    keys = {c: c.removeprefix(ENTITY_PREFIX) for c in frame.columns if c.startswith(ENTITY_PREFIX)}
    served = frame.drop(columns=[k for k in keys.values() if k in frame]).rename(columns=keys)
    served["event_timestamp"] = pd.to_datetime(served["at_ms"], unit="ms", utc=True)
    skew = features.skew(
        served, list(declared.refs), defaults=declared.default_values, full_names=declared.full_names,
        sample=SKEW_SAMPLE,
    )  # fmt: skip
    values["features.skew"] = skew.rate
    details["skew"] = skew.to_dict()
    return values, details
