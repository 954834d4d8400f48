"""The feature store from the SDK: `loopline.features.apply(...)`, `get_historical(...)`.

import loopline as ll
ll.features.apply("features.yaml")                         # entities and feature views
training = ll.features.get_historical(rows, ["customer_stats:spend", "customer_stats:orders"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.core.features import Entity, Feature, FeatureView, RegisteredView

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopline.core.datasets import DatasetVersion
    from loopline.services import Applied, Features, Materialized

__all__ = [
    "Entity",
    "Feature",
    "FeatureView",
    "apply",
    "get_historical",
    "get_online",
    "materialize",
    "register_training_set",
    "view",
    "views",
    "write_historical",
]


def _service() -> Features:
    from loopline._sdk import feature_service

    return feature_service()


def apply(*definitions: Entity | FeatureView | str | Path) -> Applied:
    """Register entities and feature views, given as objects or as a YAML or Python file
    that defines them; a view whose definition changed gets a new version."""
    from loopline.feature_store.definitions import load_definitions

    entities: list[Entity] = []
    views: list[FeatureView] = []
    for item in definitions:
        if isinstance(item, Entity):
            entities.append(item)
        elif isinstance(item, FeatureView):
            views.append(item)
        else:
            found_entities, found_views = load_definitions(Path(item))
            entities += found_entities
            views += found_views
    return _service().apply(entities, views)


def get_historical(
    entity_rows: pd.DataFrame | pa.Table | str | Path,
    features: Sequence[str],
    *,
    timestamp_column: str = "event_timestamp",
    full_names: bool = False,
) -> pd.DataFrame:
    """The entity rows with each feature (`view:feature`, `view@3:feature`, `view:*`) as it
    was known at the row's time: event and created time at or before it, within the TTL."""
    rows = Path(entity_rows) if isinstance(entity_rows, str | Path) else entity_rows
    table = _service().get_historical(
        rows, features, timestamp_column=timestamp_column, full_names=full_names
    )
    assert table is not None
    frame: pd.DataFrame = table.to_pandas()
    return frame


def write_historical(
    entity_rows: pd.DataFrame | pa.Table | str | Path,
    features: Sequence[str],
    output: str | Path,
    *,
    timestamp_column: str = "event_timestamp",
    full_names: bool = False,
) -> Path:
    """`get_historical`, written to the Parquet file `output` out of core: for entity rows
    and feature rows larger than memory."""
    rows = Path(entity_rows) if isinstance(entity_rows, str | Path) else entity_rows
    target = Path(output).resolve()
    _service().get_historical(
        rows, features, timestamp_column=timestamp_column, full_names=full_names, output=target
    )
    return target


def register_training_set(
    name: str,
    entity_rows: pd.DataFrame | pa.Table | str | Path,
    features: Sequence[str],
    *,
    timestamp_column: str = "event_timestamp",
    full_names: bool = False,
    description: str = "",
) -> DatasetVersion:
    """Build a training set and store it as dataset `name`, its lineage naming the views."""
    rows = Path(entity_rows) if isinstance(entity_rows, str | Path) else entity_rows
    return _service().register_training_set(
        name,
        rows,
        features,
        timestamp_column=timestamp_column,
        full_names=full_names,
        description=description,
    )


def materialize(view: str) -> Materialized:
    """Write `view`'s newest values known since its last materialization to the online store
    (LOOPLINE_ONLINE_STORE: SQLite beside the local store by default, or redis://...)."""
    return _service().materialize(view)


def get_online(
    entities: Mapping[str, Sequence[Any]], features: Sequence[str], *, full_names: bool = False
) -> dict[str, list[Any]]:
    """The newest materialized values, as columns beside the entity key columns:
    `get_online({"customer_id": [1, 2]}, ["customer_stats:spend"])`."""
    return _service().get_online(entities, features, full_names=full_names)


def views() -> list[RegisteredView]:
    """The newest version of every feature view."""
    return _service().views()


def view(ref: str) -> RegisteredView:
    """A feature view by `name` (its newest version) or `name@N`."""
    return _service().view(ref)
