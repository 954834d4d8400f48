"""The feature store's interface: entities, versioned feature views, point-in-time training
sets and online values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from loopline.core.datasets import DatasetVersion
from loopline.core.features import Entity, FeatureView, RegisteredView

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

EntityRows: TypeAlias = "pd.DataFrame | pa.Table | Path"
"""The rows features are joined to: a frame, an Arrow table, or a Parquet or CSV file, each
row holding the join keys and a time."""


@dataclass(frozen=True)
class Applied:
    """What `apply` did to each definition: `created`, `new version` or `unchanged`."""

    entities: dict[str, str]
    views: dict[str, str]  # view@version -> what happened


@dataclass(frozen=True)
class Materialized:
    """What one materialization run did."""

    view: str
    since_us: int | None  # the watermark it started from
    until_us: int  # its new watermark
    keys_written: int


@dataclass(frozen=True)
class Freshness:
    """How old a view's newest materialized value is, against its TTL."""

    view: str  # name@version
    ttl_s: float | None
    newest_us: int | None  # the newest event time materialized; None before the first run
    watermark_us: int | None  # materialized up to this time
    now_us: int

    @property
    def age_s(self) -> float | None:
        """Seconds since the newest materialized event."""
        return None if self.newest_us is None else (self.now_us - self.newest_us) / 1e6

    @property
    def age_ratio(self) -> float | None:
        """age / TTL: above 1, even the newest value has expired; None without a TTL."""
        age = self.age_s
        return None if age is None or self.ttl_s is None else age / self.ttl_s

    @property
    def stale(self) -> bool:
        """Nothing materialized yet, or the newest value is older than the TTL."""
        ratio = self.age_ratio
        return self.newest_us is None or (ratio is not None and ratio > 1)

    def to_dict(self) -> dict[str, Any]:
        """For --json and the REST API."""
        return {
            "view": self.view, "ttl_s": self.ttl_s, "newest_us": self.newest_us,
            "watermark_us": self.watermark_us, "age_s": self.age_s, "age_ratio": self.age_ratio,
            "stale": self.stale,
        }  # fmt: skip


class Features(Protocol):
    """Entities, feature views, training sets and online values of the `default` project:
    editors apply definitions and materialize, viewers read them and build training sets."""

    def apply(self, entities: Sequence[Entity] = (), views: Sequence[FeatureView] = ()) -> Applied:
        """Register entities and feature views; a view whose definition changed gets a new
        version, one that did not is left as it is."""

    def entities(self) -> list[Entity]:
        """Every entity."""

    def views(self) -> list[RegisteredView]:
        """The newest version of every feature view."""

    def view(self, ref: str) -> RegisteredView:
        """A view by `name` (its newest version) or `name@N`."""

    def versions(self, name: str) -> list[RegisteredView]:
        """Every version of a feature view, oldest first."""

    def get_historical(
        self,
        entity_rows: EntityRows,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_timestamp",
        full_names: bool = False,
        output: Path | None = None,
    ) -> pa.Table | None:
        """The entity rows with each requested feature (`view:feature`, `view@3:feature`,
        `view:*`) as it was known at the row's time; written to the Parquet file `output`
        (and None returned) when given."""

    def register_training_set(
        self,
        name: str,
        entity_rows: EntityRows,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_timestamp",
        full_names: bool = False,
        description: str = "",
    ) -> DatasetVersion:
        """Build a training set and store it as the next version of dataset `name`, its
        lineage naming the feature view versions it was made from."""

    def materialize(self, ref: str, *, end: datetime | None = None) -> Materialized:
        """Write view `ref`'s newest values known since its last run (up to `end`, default
        now) to the online store."""

    def get_online(
        self, entities: Mapping[str, Sequence[Any]], features: Sequence[str], *, full_names: bool = False
    ) -> dict[str, list[Any]]:
        """The newest materialized values for each entity (columns of join keys, equal
        lengths), as columns beside them; None where an entity has no value or it is older
        than the view's TTL."""

    def freshness(self, refs: Sequence[str] = ()) -> list[Freshness]:
        """How old each view's newest online value is against its TTL (every view's newest
        version by default)."""
