"""Columns of the runs table: a run attribute, or a param, metric or tag by key.

A column is named `attribute:start_time`, `metric:val loss`, `param:lr` or `tag:team` in URLs,
and becomes a field of the search language (backtick-quoted) for sorting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from loopline.core.entities import Run
from loopline.core.errors import InvalidInput

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_ENTITIES = {"param": "params", "metric": "metrics", "tag": "tags"}
ATTRIBUTE_COLUMNS = ("run_name", "status", "start_time", "duration", "created_by")
_SORTABLE_ATTRIBUTES = {"run_name", "status", "start_time", "end_time", "created_by"}


@dataclass(frozen=True)
class Column:
    """One column of the runs table."""

    entity: str  # attribute, param, metric or tag
    key: str

    @classmethod
    def parse(cls, name: str) -> Column:
        """`metric:auc` and the like; says what is wrong with anything else."""
        entity, sep, key = name.partition(":")
        if not sep or not key or (entity not in _ENTITIES and entity != "attribute"):
            raise InvalidInput(
                f"column {name!r} is not one of attribute:NAME, param:KEY, metric:KEY, tag:KEY"
            )
        return cls(entity, key)

    @property
    def name(self) -> str:
        return f"{self.entity}:{self.key}"

    @property
    def label(self) -> str:
        return self.key if self.entity == "attribute" else f"{_ENTITIES[self.entity]}.{self.key}"

    @property
    def field(self) -> str | None:
        """This column in the search language, or None when it cannot be sorted on."""
        if self.entity == "attribute":
            return self.key if self.key in _SORTABLE_ATTRIBUTES else None
        if "`" in self.key:
            return None
        key = self.key if _PLAIN_KEY.match(self.key) else f"`{self.key}`"
        return f"{_ENTITIES[self.entity]}.{key}"

    @property
    def projected(self) -> str | None:
        """This column as a search brings it (`metrics.auc`), or None for a run attribute."""
        return None if self.entity == "attribute" else f"{_ENTITIES[self.entity]}.{self.key}"

    @property
    def numeric(self) -> bool:
        return self.entity == "metric"

    def value(self, run: Run) -> Any:
        """The run's value in this column (None when it has none)."""
        if self.entity == "param":
            return run.params.get(self.key)
        if self.entity == "metric":
            return run.metrics.get(self.key)
        if self.entity == "tag":
            return run.tags.get(self.key)
        if self.key == "run_name":
            return run.name
        if self.key == "status":
            return run.status.value
        return getattr(run, self.key, None)


def default_columns(runs: list[Run], limit: int = 5) -> list[Column]:
    """The first few param and metric keys of the shown runs: a table worth reading at once."""
    params = sorted({k for run in runs for k in run.params})[:limit]
    metrics = sorted({k for run in runs for k in run.metrics})[:limit]
    return [Column("param", k) for k in params] + [Column("metric", k) for k in metrics]


def offered_columns(runs: list[Run]) -> list[str]:
    """Every key of the shown runs, as column names, for the column picker."""
    names = {f"{entity}:{key}" for run in runs for entity, keys in _keys(run) for key in keys}
    return sorted(names)


def _keys(run: Run) -> list[tuple[str, Any]]:
    return [("param", run.params), ("metric", run.metrics), ("tag", run.tags)]
