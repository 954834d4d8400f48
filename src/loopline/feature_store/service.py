"""The feature store's registry and offline retrieval: the one place their rules live.

Entities and feature views belong to the `default` project, as datasets do: editors apply
definitions, viewers read them and build training sets. Applying a view whose definition
(schema, source, transform, TTL...) changed makes a new version; `name@N` pins one.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.datasets import DatasetVersion
from loopline.core.entities import DEFAULT_PROJECT
from loopline.core.errors import InvalidInput, NotFound
from loopline.core.features import Entity, FeatureRef, FeatureView, RegisteredView, resolve_refs, unique_names
from loopline.feature_store.health import Skew, compare
from loopline.feature_store.lookup import OnlineLookup, feature_columns
from loopline.feature_store.materialize import Materialized, materialize, namespace
from loopline.feature_store.offline import ENTITY_TIME, ViewRequest, historical_features
from loopline.feature_store.online import OnlineStore
from loopline.feature_store.sources import check_source_location, source_opener
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.lineage import LineageService
from loopline.services import Datasets
from loopline.services.features import Applied, EntityRows, Freshness
from loopline.store import MetadataStore, atomic

RESOLVED_FOR_S = 10.0
"""How long `get_online` reuses a resolved `view:feature` list: a version applied by another
process is seen within this time (one applied through this service at once)."""


class FeatureService:
    """Entities, feature views and training sets, acting as `authorizer.principal`."""

    def __init__(
        self,
        store: MetadataStore,
        *,
        authorizer: Authorizer,
        audit: AuditTrail,
        lineage: LineageService,
        datasets: Datasets,
        online: Callable[[], OnlineStore],
        file_roots: Sequence[Path] | None = None,
    ) -> None:
        """`file_roots`: the folders views may read files from (a server's data roots), or
        None for anywhere, as on one's own machine."""
        self._store = store
        self._access = authorizer
        self._audit = audit
        self._lineage = lineage
        self._datasets = datasets
        self._online = online  # opened on first use: most callers never need it
        self._file_roots = None if file_roots is None else tuple(file_roots)
        self._shared_store: OnlineStore | None = None
        self._resolved: dict[tuple[str, ...], tuple[list[ViewRequest], float | None]] = {}

    # definitions -----------------------------------------------------------------------

    @atomic
    def apply(self, entities: Sequence[Entity] = (), views: Sequence[FeatureView] = ()) -> Applied:
        """Register entities and feature views; a view whose definition changed gets a new
        version, one that did not is left as it is."""
        self._access.require(DEFAULT_PROJECT, Role.EDITOR)
        unique_names(entities, "entity")
        unique_names(views, "feature view")
        self._resolved.clear()
        at, by = now_ms(), self._access.principal.name
        registry = self._store.features
        done_entities = {}
        for entity in entities:
            changed = registry.put_entity(entity, at, by)
            done_entities[entity.name] = "applied" if changed else "unchanged"
            if changed:
                self._audit.record("feature_entity.apply", f"entity:{entity.name}", after=entity.to_dict())
        done_views = {}
        for view in views:
            check_source_location(f"feature view {view.name!r}", view.source, self._file_roots)
            join_keys = self._join_keys(view)
            try:
                current: RegisteredView | None = registry.view(view.name)
            except NotFound:
                current = None
            if current is not None and current.digest == view.digest and current.join_keys == join_keys:
                done_views[current.ref] = "unchanged"
                continue
            added = registry.add_version(view, join_keys, at, by)
            done_views[added.ref] = "created" if current is None else "new version"
            self._audit.record("feature_view.apply", f"feature_view:{added.ref}", after=view.to_dict())
        return Applied(done_entities, done_views)

    def _join_keys(self, view: FeatureView) -> tuple[str, ...]:
        keys: list[str] = []
        for name in view.entities:
            keys.extend(k for k in self._store.features.entity(name).join_keys if k not in keys)
        return tuple(keys)

    def entities(self) -> list[Entity]:
        self._access.require(DEFAULT_PROJECT, Role.VIEWER)
        return self._store.features.entities()

    def views(self) -> list[RegisteredView]:
        """The newest version of every feature view."""
        self._access.require(DEFAULT_PROJECT, Role.VIEWER)
        return self._store.features.views()

    def view(self, ref: str) -> RegisteredView:
        """A view by `name` (its newest version) or `name@N`."""
        self._access.require(DEFAULT_PROJECT, Role.VIEWER)
        name, at, version = ref.partition("@")
        if at and not version.isdigit():
            raise InvalidInput(f"feature view {ref!r:.80}: the version after @ is a number")
        return self._store.features.view(name, int(version) if at else None)

    def versions(self, name: str) -> list[RegisteredView]:
        self._access.require(DEFAULT_PROJECT, Role.VIEWER)
        found = self._store.features.versions(name)
        if not found:
            raise NotFound(f"feature view {name!r} does not exist")
        return found

    # training sets ---------------------------------------------------------------------

    def get_historical(
        self,
        entity_rows: EntityRows,
        features: Sequence[str],
        *,
        timestamp_column: str = ENTITY_TIME,
        full_names: bool = False,
        output: Path | None = None,
    ) -> pa.Table | None:
        """The entity rows with each requested feature (`view:feature`, `view@3:feature`,
        `view:*`) as it was known at the row's time (see `loopline.features.offline`)."""
        requests = self._requests(features)
        with source_opener(self._datasets, self._file_roots) as open_source:
            return historical_features(
                entity_rows, requests, open_source,
                timestamp_column=timestamp_column, full_names=full_names, output=output,
            )  # fmt: skip

    def register_training_set(
        self,
        name: str,
        entity_rows: EntityRows,
        features: Sequence[str],
        *,
        timestamp_column: str = ENTITY_TIME,
        full_names: bool = False,
        description: str = "",
    ) -> DatasetVersion:
        """Build a training set and store it as the next version of dataset `name`, its
        lineage naming the feature view versions it was made from."""
        requests = self._requests(features)
        with tempfile.TemporaryDirectory(prefix="loopline-training-set-") as tmp:
            path = Path(tmp) / "training.parquet"
            with source_opener(self._datasets, self._file_roots) as open_source:
                historical_features(
                    entity_rows, requests, open_source,
                    timestamp_column=timestamp_column, full_names=full_names, output=path,
                )  # fmt: skip
            version, _ = self._datasets.register(name, path, description=description)
        for request in requests:
            self._lineage.link(("feature_view", request.view.ref), "feeds", ("dataset", version.digest))
        return version

    # online values -------------------------------------------------------------------

    def materialize(self, ref: str, *, end: datetime | None = None) -> Materialized:
        """Write view `ref`'s newest values known since its last run (up to `end`, default now)
        to the online store; an editor's action, on the audit trail."""
        self._access.require(DEFAULT_PROJECT, Role.EDITOR)
        view = self.view(ref)
        store = self._online()
        try:
            with source_opener(self._datasets, self._file_roots) as open_source:
                done = materialize(view, open_source, store, end=end)
        finally:
            store.close()
        after = {"until_us": done.until_us, "keys": done.keys_written}
        self._store.atomically(
            lambda: self._audit.record("feature_view.materialize", f"feature_view:{view.ref}", after=after)
        )
        return done

    def get_online(
        self, entities: Mapping[str, Sequence[Any]], features: Sequence[str], *, full_names: bool = False
    ) -> dict[str, list[Any]]:
        """The newest materialized values for each entity (columns of join keys, equal
        lengths), as columns beside them; None where an entity has no value or it is older
        than the view's TTL."""
        lookup = OnlineLookup(self._requests(features, cached=True), self._shared(), full_names=full_names)
        found = lookup.lookup(entities)
        shown = {name: list(values) for name, values in entities.items()}
        if clash := sorted(shown.keys() & found.keys()):
            raise InvalidInput(
                f"feature {clash[0]!r} has the name of an entity column: ask with full_names=True"
            )
        return shown | found

    def online_lookup(self, features: Sequence[str], *, full_names: bool = False) -> OnlineLookup:
        """A lookup of these features that resolves them now and keeps its own connection to
        the online store (for a server answering many requests); the caller closes it."""
        return OnlineLookup(self._requests(features), self._online(), full_names=full_names)

    def columns(self, features: Sequence[str], *, full_names: bool = False) -> list[str]:
        """The columns these features come back as (a `view:*` expanded), in order."""
        requests = self._requests(features, cached=True)
        return [name for found in feature_columns(requests, full_names) for _, name in found]

    # health --------------------------------------------------------------------------

    def freshness(self, refs: Sequence[str] = ()) -> list[Freshness]:
        """How old each view's newest online value is against its TTL (every view's newest
        version by default)."""
        views = [self.view(ref) for ref in refs] if refs else self.views()
        store = self._shared()
        now_us = time.time_ns() // 1_000
        return [
            Freshness(v.ref, v.view.ttl_s, store.newest(namespace(v)), store.watermark(namespace(v)), now_us)
            for v in views
        ]

    def skew(
        self,
        served: pd.DataFrame,
        features: Sequence[str],
        *,
        timestamp_column: str = ENTITY_TIME,
        defaults: Mapping[str, Any] | None = None,
        full_names: bool = False,
        sample: int | None = 1_000,
    ) -> Skew:
        """Training/serving skew: for (a sample of) `served` rows, holding the join keys, the
        time they were served at and the feature columns as served, compare each value with
        what offline retrieval gives for the same entity and time."""
        requests = self._requests(features)
        columns = [name for found in feature_columns(requests, full_names) for _, name in found]
        keys = list(dict.fromkeys(k for r in requests for k in r.view.join_keys))
        if missing := [c for c in [*keys, timestamp_column, *columns] if c not in served.columns]:
            raise InvalidInput(f"the served rows lack column(s) {', '.join(missing)}")
        if sample is not None and len(served) > sample:
            served = served.sample(sample, random_state=0)
        served = served.reset_index(drop=True)
        entity_rows = served[[*keys, timestamp_column]]
        with source_opener(self._datasets, self._file_roots) as open_source:
            offline = historical_features(
                entity_rows, requests, open_source, timestamp_column=timestamp_column, full_names=full_names
            )
        assert offline is not None
        return compare(served, offline.to_pandas(), columns, keys, defaults)

    def _shared(self) -> OnlineStore:
        if self._shared_store is None:
            self._shared_store = self._online()
        return self._shared_store

    def close(self) -> None:
        """Close the online store connection `get_online` keeps."""
        if self._shared_store is not None:
            self._shared_store.close()
            self._shared_store = None

    def _requests(self, features: Sequence[str], *, cached: bool = False) -> list[ViewRequest]:
        """The views and features asked for, grouped by view. `cached` (online lookups): a
        list resolved in the last RESOLVED_FOR_S seconds is reused; pinned (`@N`) ones always
        are, as a version never changes."""
        self._access.require(DEFAULT_PROJECT, Role.VIEWER)
        if isinstance(features, str):
            features = [features]
        key = tuple(features)
        held = self._resolved.get(key) if cached else None
        if held is not None and (held[1] is None or time.monotonic() < held[1]):
            return held[0]
        requests = self._resolve(key)
        if cached:
            if len(self._resolved) >= 1_024:
                self._resolved.clear()
            pinned = all(FeatureRef.parse(text).version is not None for text in key)
            self._resolved[key] = (requests, None if pinned else time.monotonic() + RESOLVED_FOR_S)
        return requests

    def _resolve(self, features: Sequence[str]) -> list[ViewRequest]:
        return [
            ViewRequest(view, chosen) for view, chosen in resolve_refs(features, self._store.features.view)
        ]


def describe(applied: Applied) -> list[dict[str, Any]]:
    """One row per definition applied, for people and --json."""
    return [{"kind": "entity", "name": n, "result": r} for n, r in applied.entities.items()] + [
        {"kind": "feature view", "name": n, "result": r} for n, r in applied.views.items()
    ]
