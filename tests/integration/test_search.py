"""Search on real databases, checked against a reference evaluation in plain Python."""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from loopline.artifacts import BlobStore
from loopline.core.entities import Metric, Run, RunStatus
from loopline.core.errors import FilterSyntaxError, InvalidInput
from loopline.core.search import And, Expr, Or, parse_filter, parse_order_by
from loopline.store import open_metadata_store
from loopline.tracking.service import TrackingService
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import BACKENDS, POSTGRES_URL, Databases, seeded_random

BOTH_MODES = True  # local and through the server

MODELS = ["rf", "gbm", "lr", "svm"]


@pytest.fixture(scope="module", params=BACKENDS)
def searched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, databases: Databases
) -> Iterator[tuple[TrackingService, list[Run]]]:
    """One store per backend for the whole module, holding 60 runs with overlapping,
    partly missing params, metrics and tags. Tests here only read it."""
    rng = seeded_random()
    directory = tmp_path_factory.mktemp("search")
    with databases.new(request.param, directory) as url:
        store = open_metadata_store(url)
        service = Backends(store, BlobStore(str(directory / "artifacts"))).services(local_owner()).tracking
        for i in range(60):
            run = service.start_run("search", run_name=f"run-{i:02d}")
            params: dict[str, Any] = {"model": rng.choice(MODELS)}
            if rng.random() < 0.7:
                params["depth"] = rng.randint(1, 4)
            metrics = [Metric("auc", round(rng.random(), 2), 0, 1)]
            if rng.random() < 0.6:
                metrics.append(Metric("loss", rng.choice([0.5, 1.5, math.nan]), 0, 1))
            tags = {"team": rng.choice(["ml", "data"])} if rng.random() < 0.5 else {}
            service.log_batch(run.id, metrics, params=params, tags=tags)
            if i % 3 == 0:
                service.end_run(run.id, RunStatus.FINISHED)
            elif i % 3 == 1:
                service.end_run(run.id, RunStatus.FAILED)
        yield service, list(service.search_runs("search", max_results=1000))
        store.close()


def _like(pattern: str, value: str, insensitive: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if insensitive else re.DOTALL) is not None


def _value(run: Run, entity: str, key: str) -> Any:
    if entity == "metric":
        value = run.metrics.get(key)
        return None if value is None or math.isnan(value) else value
    if entity == "param":
        return run.params.get(key)
    if entity == "tag":
        return run.tags.get(key)
    return {"status": run.status.value, "run_name": run.name, "run_id": run.id, "start_time": run.start_time}[
        key
    ]


def _matches(run: Run, expr: Expr) -> bool:
    if isinstance(expr, And):
        return all(_matches(run, item) for item in expr.items)
    if isinstance(expr, Or):
        return any(_matches(run, item) for item in expr.items)
    if expr.field.entity == "metric" and math.isnan(run.metrics.get(expr.field.key, 0.0)):
        return expr.op == "!="  # NaN differs from every number, as in Python
    value = _value(run, expr.field.entity, expr.field.key)
    if value is None:
        return False
    op, target = expr.op, expr.value
    checks = {
        "=": lambda: value == target,
        "!=": lambda: value != target,
        "<": lambda: value < target,
        "<=": lambda: value <= target,
        ">": lambda: value > target,
        ">=": lambda: value >= target,
        "like": lambda: _like(str(target), value, False),
        "not like": lambda: not _like(str(target), value, False),
        "ilike": lambda: _like(str(target), value, True),
        "not ilike": lambda: not _like(str(target), value, True),
        "in": lambda: value in target,  # type: ignore[operator]
        "not in": lambda: value not in target,  # type: ignore[operator]
    }
    return bool(checks[op]())


FILTERS = [
    "metrics.auc > 0.5",
    "metrics.auc > 0.5 and params.model = 'rf'",
    "metrics.auc >= 0.3 and metrics.auc < 0.7",
    "params.model != 'rf' and tags.team = 'ml'",
    "params.model in ('gbm', 'lr') and metrics.loss <= 1",
    "params.model not in ('gbm', 'lr')",
    "metrics.loss > 1 or params.depth = 2",
    "(params.model = 'rf' or params.model = 'svm') and status = 'FINISHED'",
    "status != 'RUNNING' and tags.team != 'ml'",
    "run_name like 'run-1%'",
    "run_name ilike 'RUN-2_'",
    "run_name not like '%5'",
    "params.model ilike 'R%'",
    "params.model like 'R%'",
    "metrics.loss != 0.5",
    "params.depth = 3 and params.depth != 4",
]


@pytest.mark.parametrize("text", FILTERS)
def test_filters_select_exactly_the_matching_runs(
    searched: tuple[TrackingService, list[Run]], text: str
) -> None:
    service, population = searched
    expr = parse_filter(text)
    assert expr is not None
    expected = {run.id for run in population if _matches(run, expr)}
    found = {run.id for run in service.search_runs("search", filter=text, max_results=1000)}
    assert found == expected
    assert 0 < len(expected) < len(population) or text in ("params.model like 'R%'",)


def _reference_order(runs: list[Run], order_by: list[str]) -> list[str]:
    keys = parse_order_by(order_by)

    def compare(a: Run, b: Run) -> int:
        for key in keys:
            va, vb = _value(a, key.field.entity, key.field.key), _value(b, key.field.entity, key.field.key)
            if va == vb:
                continue
            if va is None or vb is None:
                return 1 if va is None else -1  # missing values last, whatever the direction
            result = -1 if va < vb else 1
            return -result if key.descending else result
        return 0

    ordered = sorted(runs, key=lambda run: run.start_time)  # pk order: creation order
    ordered.sort(key=functools.cmp_to_key(compare))
    return [run.id for run in ordered]


@pytest.mark.parametrize(
    "order_by",
    [
        ["metrics.auc DESC"],
        ["metrics.loss ASC"],
        ["metrics.loss DESC", "params.model"],
        ["params.depth DESC", "metrics.auc"],
        ["tags.team", "run_name DESC"],
        ["status", "metrics.auc DESC"],
    ],
)
@pytest.mark.parametrize("page_size", [1, 7, 100])
def test_pages_cover_every_run_once_in_order(
    searched: tuple[TrackingService, list[Run]], order_by: list[str], page_size: int
) -> None:
    service, population = searched
    expected = _reference_order(population, order_by)
    seen: list[str] = []
    token = None
    for _ in range(len(population) + 1):
        page = service.search_runs("search", order_by=order_by, max_results=page_size, page_token=token)
        seen += [run.id for run in page]
        token = page.next_page_token
        if token is None:
            break
    assert seen == expected


def test_filter_values_are_data_never_sql(service: TrackingService) -> None:
    hostile = "rf' or '1'='1"
    service.log_batch(service.start_run("search").id, params={"model": "rf"})
    run = service.start_run("search")
    service.log_batch(run.id, params={"model": hostile})
    found = service.search_runs("search", filter=f'params.model = "{hostile}"')
    assert [r.id for r in found] == [run.id]
    assert len(service.search_runs("search", filter="params.model = 'x'' or ''1''=''1'")) == 0
    assert len(service.search_runs("search", max_results=1000)) == 2


def test_search_errors(searched: tuple[TrackingService, list[Run]]) -> None:
    service, _ = searched
    with pytest.raises(FilterSyntaxError, match="column 14"):
        service.search_runs("search", filter="metrics.auc >")
    with pytest.raises(InvalidInput, match="max_results"):
        service.search_runs("search", max_results=0)
    with pytest.raises(InvalidInput, match="malformed"):
        service.search_runs("search", page_token="not-a-token")
    token = service.search_runs("search", max_results=2).next_page_token
    assert token is not None
    with pytest.raises(InvalidInput, match="different search"):
        service.search_runs("search", max_results=2, page_token=token, filter="metrics.auc > 0")


def test_runs_across_experiments_and_projects(service: TrackingService) -> None:
    a = service.start_run("a")
    b = service.start_run("b")
    c = service.start_run("a", project="other")
    assert {r.id for r in service.search_runs(["a", "b"])} == {a.id, b.id}
    assert {r.id for r in service.search_runs()} == {a.id, b.id}
    assert {r.id for r in service.search_runs(project="other")} == {c.id}


if POSTGRES_URL:  # planner statistics are PostgreSQL's

    def test_a_search_after_a_bulk_load_plans_with_fresh_statistics(
        tmp_path: Path, databases: Databases
    ) -> None:
        """Runs logged just before a search would be planned with the statistics of the
        empty tables; the search analyses the tables that changed past the threshold."""
        with databases.new("postgres", tmp_path) as url:
            store = open_metadata_store(url)
            service = Backends(store, BlobStore(str(tmp_path / "artifacts"))).services(local_owner()).tracking
            for i in range(300):
                run = service.start_run("bulk")
                service.log_batch(run.id, [Metric("m", i / 300, 0, 1)], params={"p": "xy"[i % 2]})

            def statistics() -> dict[str, tuple[int, bool]]:
                query = text(
                    "SELECT relname, n_mod_since_analyze, last_analyze IS NOT NULL FROM pg_stat_user_tables"
                    " WHERE schemaname = current_schema()"
                    " AND relname IN ('runs', 'params', 'latest_metrics')"
                )
                with store.db.engine.connect() as conn:
                    return {name: (changed, analysed) for name, changed, analysed in conn.execute(query)}

            deadline = time.monotonic() + 30  # backends report their counts within seconds
            while any(changed < 300 for changed, _ in statistics().values()) and time.monotonic() < deadline:
                time.sleep(0.2)
            before = statistics()
            assert len(before) == 3 and all(changed >= 300 for changed, _ in before.values()), before

            found = service.search_runs("bulk", filter="metrics.m > 0.5 and params.p = 'x'")
            assert len(found) == sum(1 for i in range(300) if i / 300 > 0.5 and i % 2 == 0)
            after = statistics()
            assert all(analysed and changed < 300 for changed, analysed in after.values()), after
            store.close()


def test_a_nan_metric_differs_from_every_number_and_compares_with_none(service: TrackingService) -> None:
    """The documented rule (IEEE's): NaN matches `!=`, never `=`, `<` or `>`."""
    ids = {}
    for name, value in (("nan", math.nan), ("half", 0.5), ("more", 0.7)):
        run = service.start_run("nan", run_name=name)
        service.log_batch(run.id, [Metric("m", value, 0, 1)], params={"p": name})
        ids[run.id] = name

    def found(text: str) -> set[str]:
        return {ids[r.id] for r in service.search_runs("nan", filter=text)}

    assert found("metrics.m != 0.5") == {"nan", "more"}
    assert found("metrics.m = 0.5") == {"half"}
    assert found("metrics.m < 1") == {"half", "more"}
    assert found("metrics.m > 0") == {"half", "more"}
    assert found("metrics.m != 0.5 OR params.p = 'half'") == {"nan", "half", "more"}  # nested, same rule
