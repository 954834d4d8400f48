"""Online lookups: the newest materialized values of some features for a batch of entities.

An `OnlineLookup` resolves its views, features and TTLs once and holds the online store open,
so a lookup costs one read of the store per view and nothing else: the serving server keeps
one for its deployment's declared features, and `FeatureService.get_online` builds one per call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from loopline.core.errors import InvalidInput
from loopline.feature_store.materialize import namespace
from loopline.feature_store.offline import ViewRequest
from loopline.feature_store.online import OnlineStore


class OnlineLookup:
    """Looks up `requests` in `store`; output columns are the feature names, or
    `view__feature` with `full_names` (required when two views share a feature name)."""

    def __init__(
        self, requests: Sequence[ViewRequest], store: OnlineStore, *, full_names: bool = False
    ) -> None:
        self._store = store
        self._plan = [
            (namespace(r.view), r.view.join_keys, _ttl_us(r.view.view.ttl_s), columns)
            for r, columns in zip(requests, feature_columns(requests, full_names), strict=True)
        ]

    @property
    def join_keys(self) -> list[str]:
        """Every entity column a lookup needs, in first-seen order."""
        return list(dict.fromkeys(k for _, keys, _, _ in self._plan for k in keys))

    @property
    def columns(self) -> list[str]:
        """The feature columns a lookup returns, in request order."""
        return [name for *_, columns in self._plan for _, name in columns]

    def lookup(self, entities: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        """The feature columns for these entities (columns of join keys, equal lengths): None
        where an entity has no value, or one older than its view's TTL."""
        lengths = {len(values) for values in entities.values()}
        if len(lengths) > 1:
            raise InvalidInput("the entity columns must all have the same length")
        now_us = time.time_ns() // 1_000
        found: dict[str, list[Any]] = {}
        for view, join_keys, ttl_us, columns in self._plan:
            for key in join_keys:
                if key not in entities:
                    raise InvalidInput(f"feature view {view} is looked up by {key!r}: give that column")
                if (row := _first_null(entities[key])) is not None:
                    raise InvalidInput(f"entity {key!r} is null at position {row}")
            keys = list(zip(*(entities[k] for k in join_keys), strict=True))
            held = [
                None if hit is None or (ttl_us is not None and now_us - hit[0] > ttl_us) else hit[1]
                for hit in self._store.read(view, keys)
            ]
            for feature, name in columns:
                found[name] = [None if values is None else values.get(feature) for values in held]
        return found

    def close(self) -> None:
        """Close the online store."""
        self._store.close()


def feature_columns(requests: Sequence[ViewRequest], full_names: bool) -> list[list[tuple[str, str]]]:
    """Per request, each feature and the column it is shown as: its name, or `view__feature`
    with `full_names`; a name shown twice is refused."""
    shown: set[str] = set()
    found = []
    for request in requests:
        columns = []
        for feature in request.features:
            name = f"{request.view.view.name}__{feature}" if full_names else feature
            if name in shown:
                raise InvalidInput(f"feature {name!r} is asked twice: ask with full_names=True")
            shown.add(name)
            columns.append((feature, name))
        found.append(columns)
    return found


def _ttl_us(ttl_s: float | None) -> int | None:
    return None if ttl_s is None else int(ttl_s * 1_000_000)


def _first_null(values: Sequence[Any]) -> int | None:
    for i, value in enumerate(values):
        if value is None:
            return i
    return None
