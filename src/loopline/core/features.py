"""Feature store definitions: entities and feature views, as users declare them.

An entity names the join keys its rows are found by (`customer` by `customer_id`). A
feature view reads typed features of one or more entities from a source (a Parquet or CSV
file, a dataset version, or a SQL query) with the time each value held from (`event_time`)
and, optionally, the time it was written (`created_time`), and keeps a value for `ttl`.
Names that become columns are identifiers, so that no definition ever needs quoting in SQL.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopline.core.errors import InvalidInput, NotFound

FEATURE_TYPES = ("int64", "float64", "string", "bool", "timestamp")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def check_identifier(kind: str, name: object) -> str:
    """A name that becomes a column or a table: letters, digits and _, not first a digit."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise InvalidInput(
            f"{kind} {name!r:.80} must be an identifier: letters, digits and _, starting with a letter or _"
        )
    return name


def parse_ttl(value: object, view: str) -> float | None:
    """Seconds from `3600`, `"90m"`, `"12h"`, `"30d"` or `"2w"`; None (no limit) stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(
            f"feature view {view!r}: ttl {value!r:.40} is neither seconds nor a duration like '30d'"
        )
    found = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if isinstance(value, str) and found is None:
        raise InvalidInput(
            f"feature view {view!r}: ttl {value!r:.40} is not a duration like 3600, '90m' or '30d'"
        )
    seconds = float(value) if found is None else float(found.group(1)) * _UNIT_S[found.group(2) or "s"]
    if not seconds > 0 or seconds == float("inf"):
        raise InvalidInput(
            f"feature view {view!r}: ttl must be more than zero (a value that is never valid); "
            "leave it out for values that never expire"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class Entity:
    """A thing features describe, and the columns that identify one."""

    name: str
    join_keys: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier("entity name", self.name)
        if isinstance(self.join_keys, str) or not self.join_keys:
            raise InvalidInput(f"entity {self.name!r} needs its join keys, a list of column names")
        object.__setattr__(self, "join_keys", tuple(check_identifier("join key", k) for k in self.join_keys))

    def to_dict(self) -> dict[str, Any]:
        """The entity as a definitions file (or the server's JSON) writes it."""
        return {"name": self.name, "join_keys": list(self.join_keys), "description": self.description}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entity:
        """The entity `to_dict` (or a definitions file) describes; any other field is refused."""
        if not isinstance(data, Mapping) or set(data) - {"name", "join_keys", "description"}:
            raise InvalidInput(f"entity {data!r:.80} takes name, join_keys and description")
        keys = data.get("join_keys") or ()
        if not isinstance(keys, list | tuple):
            raise InvalidInput(f"entity {data.get('name')!r:.80}: join_keys is a list of column names")
        return cls(data.get("name"), tuple(keys), str(data.get("description") or ""))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    dtype: str

    def __post_init__(self) -> None:
        check_identifier("feature name", self.name)
        if self.dtype not in FEATURE_TYPES:
            raise InvalidInput(
                f"feature {self.name!r} has type {self.dtype!r}; use one of {', '.join(FEATURE_TYPES)}"
            )


@dataclass(frozen=True, slots=True)
class FeatureView:
    """Typed features of `entities`, read from `source` as of each row's time."""

    name: str
    entities: tuple[str, ...]
    source: str  # a Parquet or CSV file, datasets:/NAME@VERSION, or a SQLAlchemy URL with `query`
    event_time: str
    features: tuple[Feature, ...]
    ttl_s: float | None = None  # None: a value holds until a newer one
    created_time: str | None = None
    query: str | None = None
    transform: str | None = None  # SQL over the table `source`, run in DuckDB
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = check_identifier("feature view name", self.name)
        if isinstance(self.entities, str) or not self.entities:
            raise InvalidInput(f"feature view {name!r} names no entity")
        object.__setattr__(self, "entities", tuple(check_identifier("entity name", e) for e in self.entities))
        if not isinstance(self.source, str) or not self.source.strip():
            raise InvalidInput(f"feature view {name!r} has no source")
        check_identifier(f"feature view {name!r}: event_time column", self.event_time)
        if self.created_time is not None:
            check_identifier(f"feature view {name!r}: created_time column", self.created_time)
        if not self.features:
            raise InvalidInput(f"feature view {name!r} declares no feature")
        features = tuple(f if isinstance(f, Feature) else Feature(*f) for f in self.features)
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            raise InvalidInput(f"feature view {name!r} declares a feature twice: {sorted(names)}")
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "ttl_s", parse_ttl(self.ttl_s, name))
        if is_sql_source(self.source) and not self.query:
            raise InvalidInput(
                f"feature view {name!r} reads a database: give the SQL query that selects its rows"
            )

    def definition(self) -> dict[str, Any]:
        """What makes a version: a change of any of it (schema, source, transform...) is a new one."""
        return {
            "entities": list(self.entities),
            "source": self.source,
            "query": self.query,
            "event_time": self.event_time,
            "created_time": self.created_time,
            "ttl_s": self.ttl_s,
            "features": [[f.name, f.dtype] for f in self.features],
            "transform": self.transform,
        }

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.definition(), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.definition(),
            "description": self.description,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureView:
        """The view `to_dict` (or a definitions file) describes: `features` maps each name to
        its type, or lists `[name, type]` pairs or `{name, dtype}` objects."""
        known = {"name", "entities", "source", "query", "event_time", "created_time", "ttl", "ttl_s",
                 "features", "transform", "description", "tags"}  # fmt: skip
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a feature view is a mapping of its fields, not {data!r:.80}")
        where = f"feature view {data.get('name')!r:.80}"
        if unknown := sorted(set(data) - known):
            raise InvalidInput(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        features = data.get("features")
        if isinstance(features, Mapping):
            features = [Feature(str(k), str(v)) for k, v in features.items()]
        elif isinstance(features, list):
            features = [_feature(f, where) for f in features]
        else:
            raise InvalidInput(
                f"{where}: features must map each name to its type (int64, float64, string...)"
            )
        entities, tags = data.get("entities") or (), data.get("tags") or {}
        if not isinstance(entities, list | tuple):
            raise InvalidInput(f"{where}: entities is a list of entity names")
        if not isinstance(tags, Mapping):
            raise InvalidInput(f"{where}: tags map names to values")
        for text in ("query", "transform"):
            if not isinstance(data.get(text), str | None):
                raise InvalidInput(f"{where}: {text} is SQL text")
        return cls(
            name=data.get("name"),  # type: ignore[arg-type]
            entities=tuple(entities),
            source=data.get("source"),  # type: ignore[arg-type]
            event_time=data.get("event_time"),  # type: ignore[arg-type]
            features=tuple(features),
            ttl_s=data.get("ttl_s", data.get("ttl")),
            created_time=data.get("created_time"),
            query=data.get("query"),
            transform=data.get("transform"),
            description=str(data.get("description") or ""),
            tags={str(k): str(v) for k, v in tags.items()},
        )


def _feature(item: object, where: str) -> Feature:
    """One feature of a list: `[name, type]` or `{name, dtype}`."""
    if isinstance(item, Mapping) and set(item) == {"name", "dtype"}:
        return Feature(item["name"], item["dtype"])
    if isinstance(item, list | tuple) and len(item) == 2:
        return Feature(*item)
    raise InvalidInput(f"{where}: feature {item!r:.80} is neither [name, type] nor {{name, dtype}}")


@dataclass(frozen=True, slots=True)
class RegisteredView:
    """A version of a feature view, as the registry holds it."""

    view: FeatureView
    version: int
    digest: str
    join_keys: tuple[str, ...]  # its entities' join keys, in order
    created_at: int
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.view.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class FeatureRef:
    """`view:feature`, `view@3:feature` or `view:*`, as a training set or a lookup asks."""

    view: str
    version: int | None
    feature: str  # "*": every feature of the view

    @classmethod
    def parse(cls, text: str) -> FeatureRef:
        view, colon, feature = text.partition(":")
        name, at, version = view.partition("@")
        if not colon or not feature:
            raise InvalidInput(f"feature {text!r:.80} is not view:feature (or view@VERSION:feature, view:*)")
        if at and not version.isdigit():
            raise InvalidInput(f"feature {text!r:.80}: the version after @ is a number")
        check_identifier("feature view name", name)
        if feature != "*":
            check_identifier("feature name", feature)
        return cls(name, int(version) if at else None, feature)


ViewOf = Callable[[str, int | None], RegisteredView]
"""A registered view by name and version (None: its newest); NotFound when there is none."""


def resolve_refs(refs: Sequence[str], view_of: ViewOf) -> list[tuple[RegisteredView, list[str]]]:
    """The view versions and features `refs` ask for, grouped by view version in the order
    first asked, each feature once (`view:*` is all of them). One `view_of` per view asked;
    NotFound names a feature the view does not have."""
    views: dict[tuple[str, int | None], RegisteredView] = {}
    grouped: dict[str, tuple[RegisteredView, list[str]]] = {}
    for text in refs:
        ref = FeatureRef.parse(text)
        if (ref.view, ref.version) not in views:
            views[ref.view, ref.version] = view_of(ref.view, ref.version)
        view = views[ref.view, ref.version]
        declared = [f.name for f in view.view.features]
        if ref.feature != "*" and ref.feature not in declared:
            raise NotFound(
                f"feature view {view.ref} has no feature {ref.feature!r} (it has {', '.join(declared)})"
            )
        chosen = grouped.setdefault(view.ref, (view, []))[1]
        chosen.extend(f for f in (declared if ref.feature == "*" else [ref.feature]) if f not in chosen)
    return list(grouped.values())


def is_sql_source(source: str) -> bool:
    return "://" in source and not source.startswith(("datasets:/", "file://", "s3://"))


def parse_definitions(document: Mapping[str, Any]) -> tuple[list[Entity], list[FeatureView]]:
    """The entities and feature views of a YAML definitions file's content."""
    if not isinstance(document, Mapping) or not set(document) <= {"entities", "feature_views"}:
        raise InvalidInput("a definitions file holds `entities:` and `feature_views:` lists, nothing else")
    entities = [Entity.from_dict(item) for item in document.get("entities") or []]
    views = [FeatureView.from_dict(item) for item in document.get("feature_views") or []]
    return entities, views


def unique_names(items: Sequence[Entity] | Sequence[FeatureView], kind: str) -> None:
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        raise InvalidInput(
            f"a {kind} is defined twice: {sorted(n for n in names if names.count(n) > 1)[0]!r}"
        )
