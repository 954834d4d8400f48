"""A deployment's online features: its declaration resolved against the feature registry,
and the join of the looked-up values to each request's rows before any model sees them.

The declaration (`FeatureDeclaration`, in the traffic policy) is resolved when the server
(re)builds the deployment: at start, and when its revision or served versions change. An
unpinned ref (`view:feature`) then means the view's newest version, pinned for as long as the
build serves; `view@N:feature` never moves. A request reads the online store once per view
for all its rows, and queries the registry never.

Per request:

- every row must give the views' join keys (request fields); a missing or null one is a 422
  naming the field. Join keys the model does not take are consumed by the lookup, never
  refused as extra fields.
- a feature without a (fresh) value takes the declared default; without one the request is
  refused (422) naming the feature, its view and the entity keys.
- a row that gives a feature's field itself keeps what it gives: the request's value wins
  over the store's (a caller that knows a fresher value, or a backfill).
- features the answering model does not take are dropped before it (the deployment asked
  for them, not the caller: during a canary one arm may take a feature the other does not).
  Those it takes are among its inputs, so the prediction log holds them like any input.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from loopline.core.errors import InvalidInput
from loopline.core.features import RegisteredView, ViewOf, resolve_refs
from loopline.core.traffic import FeatureDeclaration
from loopline.serving.http import HttpError
from loopline.serving.payloads import Payload

if TYPE_CHECKING:
    from loopline.feature_store.lookup import OnlineLookup

log = logging.getLogger("loopline.serving")
MISSING_SHOWN = 5  # entity keys a refusal names; it says how many more there are


@runtime_checkable
class FeatureCatalog(Protocol):
    """What a server needs of the feature store (`FeatureService` is one)."""

    def view(self, ref: str) -> RegisteredView:
        """A view by `name` (its newest version) or `name@N`."""

    def online_lookup(self, features: Sequence[str], *, full_names: bool = False) -> OnlineLookup:
        """A lookup of these features that keeps its own connection to the online store."""


@dataclass(frozen=True)
class ResolvedFeature:
    """One feature column a declaration asks for, and the view version it comes from."""

    column: str
    view: RegisteredView
    feature: str
    dtype: str

    @property
    def pinned(self) -> str:
        """Its ref at the resolved version: `view@N:feature`."""
        return f"{self.view.ref}:{self.feature}"


def catalog_views(catalog: FeatureCatalog) -> ViewOf:
    """`catalog.view` as `resolve_features` asks for views."""
    return lambda name, version: catalog.view(name if version is None else f"{name}@{version}")


def resolve_features(declaration: FeatureDeclaration, view_of: ViewOf) -> list[ResolvedFeature]:
    """Each feature column of `declaration`, in declaration order; NotFound names an unknown view
    or feature, InvalidInput a column asked from two views or a default of no declared column."""
    found: dict[str, ResolvedFeature] = {}
    for registered, features in resolve_refs(declaration.refs, view_of):
        dtypes = {f.name: f.dtype for f in registered.view.features}
        for name in features:
            column = f"{registered.view.name}__{name}" if declaration.full_names else name
            if (held := found.get(column)) is not None:
                raise InvalidInput(
                    f"feature column {column!r} comes from {held.view.ref} and from {registered.ref}: "
                    "declare full_names (columns named view__feature), or ask for one of them"
                )
            found[column] = ResolvedFeature(column, registered, name, dtypes[name])
    keys = {k for r in found.values() for k in r.view.join_keys}
    if clash := sorted(keys & found.keys()):
        raise InvalidInput(f"feature column {clash[0]!r} has the name of a join key: declare full_names")
    for name, value in declaration.defaults:
        if name not in found:
            raise InvalidInput(
                f"feature default {name!r} is of no declared feature (the columns are {', '.join(found)})"
            )
        if not _fits(value, found[name].dtype):
            raise InvalidInput(
                f"the default of feature {name!r} ({value!r:.40}) is not a {found[name].dtype} value"
            )
    return list(found.values())


def _fits(value: Any, dtype: str) -> bool:
    if dtype == "float64":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if dtype == "int64":
        return isinstance(value, int) and not isinstance(value, bool)
    if dtype == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)  # string, and timestamp as ISO text


class DeploymentFeatures:
    """The online features of one build of a deployment: a lookup holding the online store
    open, on a thread of its own (the store's reads block; SQLite's connection belongs to the
    thread that opened it, so opening, reading and closing all happen there).

    Requests `acquire` it while they use it; once `retire`d by a newer build it closes when
    the last of them `release`s it. All three run on the event loop, so they need no lock."""

    def __init__(
        self,
        deployment: str,
        declaration: FeatureDeclaration,
        resolved: Sequence[ResolvedFeature],
        lookup: OnlineLookup,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.deployment = deployment
        self.declaration = declaration
        self.resolved = list(resolved)
        self.identity = self.identity_of(declaration, resolved)
        self._lookup = lookup
        self._executor = executor
        self._defaults = declaration.default_values
        self.join_keys = lookup.join_keys
        self.columns = [r.column for r in resolved]
        self.consumed = frozenset([*self.join_keys, *self.columns])  # fields that are never "extra"
        self._active = 0
        self._retired = False
        self.closed = False

    @classmethod
    def open(
        cls,
        deployment: str,
        declaration: FeatureDeclaration,
        resolved: Sequence[ResolvedFeature],
        catalog: FeatureCatalog,
    ) -> DeploymentFeatures:
        """Open a lookup of the `resolved` features, pinned to their versions."""
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"loopline-features-{deployment}")
        try:
            pinned = [r.pinned for r in resolved]
            lookup = executor.submit(
                catalog.online_lookup, pinned, full_names=declaration.full_names
            ).result()
        except BaseException:
            executor.shutdown(wait=False)
            raise
        if sorted(lookup.columns) != sorted(r.column for r in resolved):  # both from one resolution
            executor.submit(lookup.close)
            executor.shutdown(wait=False)
            raise InvalidInput(f"deployment {deployment!r}: its feature lookup returns {lookup.columns}")
        return cls(deployment, declaration, resolved, lookup, executor)

    @staticmethod
    def identity_of(declaration: FeatureDeclaration, resolved: Sequence[ResolvedFeature]) -> tuple[Any, ...]:
        """What a build's features are: the same identity, the same lookup can serve."""
        return tuple(r.pinned for r in resolved), declaration.full_names, declaration.defaults

    # the lifetime of one build's lookup ------------------------------------------------------

    def acquire(self) -> None:
        """A request uses it (until it `release`s it)."""
        self._active += 1

    def release(self) -> None:
        """A request is done with it."""
        self._active -= 1
        if self._retired and self._active == 0:
            self._close()

    def retire(self) -> None:
        """A newer build replaced it: close once no request uses it."""
        self._retired = True
        if self._active == 0:
            self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self._executor.submit(self._lookup.close)  # on the thread that opened the store
            self._executor.shutdown(wait=False)  # lets that close run, then ends the thread

    # requests ----------------------------------------------------------------------------------

    async def join(self, payload: Payload) -> Payload:
        """The request's rows with the feature columns joined (see the module's rules)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._join, payload)

    def _join(self, payload: Payload) -> Payload:
        wanted = {c: rows for c in self.columns if (rows := payload.rows_without(c))}
        if not wanted:  # the request gives every feature itself
            return payload
        entities = {key: self._entity_column(payload, key) for key in self.join_keys}
        try:
            found = self._lookup.lookup(entities)
        except InvalidInput as exc:
            raise HttpError(422, str(exc)) from None
        except Exception as exc:  # the store is down or unreachable: not the request's fault
            log.error("deployment %s: the online feature store failed", self.deployment, exc_info=exc)
            raise HttpError(503, f"the online feature store failed: {type(exc).__name__}") from None
        problems = []
        joined: dict[str, list[Any]] = {}
        for resolved in self.resolved:
            if resolved.column not in wanted:
                continue
            values = found[resolved.column]
            missing = [i for i in wanted[resolved.column] if values[i] is None]
            if missing:
                if resolved.column not in self._defaults:
                    problems.append(self._no_value(resolved, missing, entities))
                    continue
                default = self._defaults[resolved.column]
                values = [default if v is None else v for v in values]
            joined[resolved.column] = values
        if problems:
            raise HttpError(422, "; ".join(problems), problems=problems)
        return payload.with_columns(joined)

    def entities(self, payload: Payload) -> dict[str, list[Any]]:
        """Each join key's value in every row of a joined payload (for the prediction log)."""
        return {key: payload.column(key) for key in self.join_keys}

    def _entity_column(self, payload: Payload, key: str) -> list[Any]:
        lacking = payload.rows_without(key)
        if lacking:
            rows = "the request" if len(lacking) == len(payload) else f"row {lacking[0]}"
            raise HttpError(
                422,
                f"{rows} lacks field {key!r}: deployment {self.deployment!r} looks its features "
                f"({', '.join(self.declaration.refs[:5])}) up by {', '.join(map(repr, self.join_keys))}",
            )
        values = payload.column(key)
        for i, value in enumerate(values):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise HttpError(422, f"field {key!r} is null in row {i}: the features are looked up by it")
        return values

    def _no_value(self, resolved: ResolvedFeature, missing: list[int], entities: dict[str, list[Any]]) -> str:
        keys = resolved.view.join_keys
        named: dict[str, None] = {}  # each entity once, in row order
        for i in missing:
            pairs = ", ".join(f"{k}={entities[k][i]!r}" for k in keys)
            named[pairs if len(keys) == 1 else f"({pairs})"] = None
        shown = list(named)[:MISSING_SHOWN]
        more = f" and {len(named) - MISSING_SHOWN} more" if len(named) > MISSING_SHOWN else ""
        return (
            f"feature {resolved.column!r} of view {resolved.view.view.name} has no value for "
            f"{', '.join(shown)}{more} and no default"
        )
