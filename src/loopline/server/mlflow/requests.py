"""The request bodies of MLflow's API. Unknown fields are ignored, as MLflow's server does."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from loopline.core.entities import DEFAULT_EXPERIMENT, Experiment, Metric
from loopline.core.errors import InvalidInput
from loopline.server.deps import offset
from loopline.tracking.service import TrackingService

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class KeyValue(Body):
    key: str
    value: str = ""


class RunRef(Body):
    """MLflow's clients name a run by `run_id`, older ones by `run_uuid`."""

    run_id: str | None = None
    run_uuid: str | None = None

    @property
    def id(self) -> str:
        found = self.run_id or self.run_uuid
        if not found:
            raise InvalidInput("run_id is required")
        return found


class MetricIn(Body):
    key: str
    value: float | str
    timestamp: int
    step: int = 0
    model_id: str | None = None  # also a logged model's metric (MLflow 3 links them)

    def parsed(self) -> Metric:
        value = self.value
        if isinstance(value, str):
            if value not in _SPECIAL:
                raise InvalidInput(f"value of metric {self.key!r} is {value!r:.40}, not a number")
            value = _SPECIAL[value]
        return Metric(self.key, value, self.step, self.timestamp)


def pairs(items: list[KeyValue]) -> dict[str, str]:
    return {item.key: item.value for item in items}


def experiment_of(tracking: TrackingService, experiment_id: str | None) -> Experiment:
    """MLflow's experiment "0" (its Default) is loopline's default experiment."""
    if experiment_id in (None, "", "0"):
        return tracking.get_or_create_experiment(DEFAULT_EXPERIMENT)
    if not experiment_id.isdigit() or len(experiment_id) > 18:
        raise InvalidInput(f"experiment_id {experiment_id!r:.40} is not an experiment's id")
    return tracking.get_experiment(int(experiment_id))


def page(items: list[Any], page_token: str | None, size: int) -> tuple[list[Any], str | None]:
    """One page of `items` and the token of the next, as the server's other listings give them."""
    start = offset(page_token)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


MaxResults = Field(default=1000, ge=1, le=50_000)


_CLAUSE = re.compile(
    r"""^\s*(?:attributes?\.)?(?:(?P<tag>tags?\.)(?:`(?P<quoted>[^`]+)`|"(?P<dquoted>[^"]+)"|(?P<key>[\w.]+))|(?P<field>\w+))"""
    r"""\s*(?P<op>=|!=|(?:NOT\s+)?I?LIKE)\s*(?:'(?P<value>[^']*)'|"(?P<dvalue>[^"]*)")\s*$""",
    re.IGNORECASE,
)


def name_filter(
    filter: str | None, fields: tuple[str, ...] = ("name",)
) -> Callable[[Mapping[str, str]], bool]:
    """The simple filters MLflow's clients send when searching experiments, models and logged
    models: comparisons of a field or a tag (`name = 'x'`, `name LIKE 'ex%'`,
    `tags.team != 'a'`) joined by AND. Tags are looked up as `tag:KEY`; a missing one is ''."""
    if not filter or not filter.strip():
        return lambda _values: True
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for clause in re.split(r"\s+AND\s+", filter.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.match(clause)
        field = found and (
            f"tag:{found['quoted'] or found['dquoted'] or found['key']}" if found["tag"] else found["field"]
        )
        if found is None or not field or (not field.startswith("tag:") and field not in fields):
            raise InvalidInput(
                f"filter {clause!r:.80} is not supported here: compare {', '.join(fields)} or tags.KEY with "
                "=, !=, LIKE or ILIKE and a quoted string, joined by AND"
            )
        text = found["value"] if found["value"] is not None else found["dvalue"] or ""
        tests.append(_comparison(field, found["op"].upper(), text))
    return lambda values: all(test(values) for test in tests)


def with_tags(values: Mapping[str, str], tags: Mapping[str, str]) -> dict[str, str]:
    return {**values, **{f"tag:{k}": v for k, v in tags.items()}}


def _comparison(field: str, op: str, text: str) -> Callable[[Mapping[str, str]], bool]:
    if op in ("=", "!="):
        return lambda values: (values.get(field, "") == text) == (op == "=")
    pattern = re.compile(
        "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in text),
        re.IGNORECASE if "ILIKE" in op else 0,
    )
    negated = op.startswith("NOT")
    return lambda values: bool(pattern.fullmatch(values.get(field, ""))) != negated
