"""The web UI's feature store pages, over a real server and store: views with their
freshness, a view's definition and versions, the training sets built from it and the models
made from those, the deployments that serve it; hostile text shown as text."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopline.core.features import Entity, Feature, FeatureView
from loopline.core.traffic import FeatureDeclaration, TrafficPolicy
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import local_owner
from tests.integration.api_helpers import Team, sqlite_team
from tests.integration.ui_helpers import signed_in

PAYLOAD = "<script>alert(1)</script>"
ESCAPED = html.escape(PAYLOAD)  # &lt;script&gt;alert(1)&lt;/script&gt;
CUSTOMER = Entity("customer", ("customer_id",), description=PAYLOAD)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with sqlite_team(tmp_path_factory.mktemp("ui-features")) as running:
        yield running


def _source(path: Path, times: list[datetime]) -> Path:
    """Spend and orders of customers 1, 2, ... at `times` (one row each)."""
    rows = pd.DataFrame(
        {
            "customer_id": list(range(1, len(times) + 1)),
            "event_ts": pd.to_datetime(times, utc=True),
            "spend": [10.0 * (i + 1) for i in range(len(times))],
            "orders": list(range(1, len(times) + 1)),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(path)
    return path


def _view(name: str, source: Path, **changes: Any) -> FeatureView:
    fields = {"name": name, "entities": ("customer",), "source": str(source), "event_time": "event_ts",
              "features": (Feature("spend", "float64"), Feature("orders", "int64"))} | changes  # fmt: skip
    return FeatureView(**fields)


@pytest.fixture(scope="module")
def world(team: Team, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`stats` in two versions (the second materialized with values of an hour ago, the first
    never), a training set built from each version and a model trained on the first, two
    deployments declaring its features; `dormant`, never materialized; `old`, materialized
    with values past its TTL; `hostile`, whose source path, transform and description hold a
    script."""
    root = tmp_path_factory.mktemp("feature-sources")
    now = datetime.now(UTC)
    recent = _source(root / "recent.parquet", [now - timedelta(hours=1), now - timedelta(hours=2)])
    ancient = _source(root / "ancient.parquet", [datetime(2020, 1, 1, tzinfo=UTC)])
    hostile_source = _source(root / "<script>alert(1)<" / "script>.parquet", [now])
    assert PAYLOAD in str(hostile_source)

    services = team.backends.services(local_owner())
    features = services.features
    features.apply([CUSTOMER], [_view("stats", recent, ttl_s="30d")])
    features.apply(
        [],
        [
            _view("stats", recent, ttl_s="60d", description="spend and orders"),
            _view("dormant", recent, ttl_s="1d"),
            _view("old", ancient, ttl_s="1d"),
            _view(
                "hostile",
                hostile_source,
                description=PAYLOAD,
                tags={"note": PAYLOAD},
                transform=f"SELECT * FROM source -- {PAYLOAD}",
            ),
        ],
    )
    assert features.materialize("stats").view == "stats@2"
    features.materialize("old")

    rows = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [now, now]})
    first = features.register_training_set("churn-training", rows, ["stats@1:spend", "stats@1:orders"])
    second = features.register_training_set("churn-latest", rows, ["stats:spend"])
    tracker = Tracker(services.tracking, registry=services.registry, capture_context=False)
    with tracker.start_run("churn") as run:
        run.log_input(first)
        frame = services.datasets.read(first).to_pandas()[["spend", "orders"]]
        model = run.log_model(LogisticRegression().fit(frame, [0, 1]), "churn", input_example=frame)
    tracker.close()

    champion = TrafficPolicy.single("models:/cancer@champion")
    deployments = services.deployments
    deployments.create("stats-pinned", champion.with_features(FeatureDeclaration(("stats@1:spend",))))
    deployments.create("stats-newest", champion.with_features(FeatureDeclaration(("stats:*",))))
    return {"first": first, "second": second, "model": model, "hostile_source": hostile_source}


def page(team: Team, user: str, path: str, status: int = 200) -> str:
    browser = signed_in(team, user)
    try:
        answer = browser.get(path)
    finally:
        browser.close()
    assert answer.status_code == status, (path, answer.status_code, answer.text[:500])
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    return answer.text


def table(text: str, table_id: str) -> str:
    found = re.search(rf'<table[^>]* id="{table_id}".*?</table>', text, re.S)
    assert found is not None, f"no table {table_id}"
    return found.group(0)


def row(text: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr {attribute}="{value}"[^>]*>.*?</tr>', text, re.S)
    assert found is not None, f"no row {attribute}={value}"
    return found.group(0)


def no_script_of_ours(text: str) -> None:
    assert PAYLOAD not in text
    assert re.findall(r"<script\b[^>]*>", text) == ['<script src="/static/loopline.js" defer>']
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", text)  # no event-handler attributes


# the list ----------------------------------------------------------------------------------


def test_the_navigation_links_to_the_features_page(team: Team, world: dict[str, Any]) -> None:
    assert '<a href="/features">Features</a>' in page(team, "vera", "/datasets")


def test_the_list_shows_each_view_with_its_newest_version_and_freshness(
    team: Team, world: dict[str, Any]
) -> None:
    text = page(team, "vera", "/features")
    views = table(text, "feature-views")
    stats = row(views, "data-view", "stats")
    assert 'href="/features/stats"' in stats and 'href="/features/stats?version=2">v2</a>' in stats
    assert "<td>customer</td>" in stats and "<td>customer_id</td>" in stats
    assert '<td class="num">2</td>' in stats and '<td class="num">60d</td>' in stats
    assert 'data-state="fresh">fresh</span>' in stats
    assert re.search(r'<td class="num">1h( \d\dm)?</td>', stats)  # the newest value is an hour old
    assert '<td class="num">0.00</td>' in stats  # an hour of 60 days
    assert datetime.now(UTC).strftime("%Y-%m-%d") in stats  # materialized up to now

    dormant = row(views, "data-view", "dormant")
    assert 'data-state="never">never materialized</span>' in dormant
    assert '<span class="muted">never</span>' in dormant

    old = row(views, "data-view", "old")
    assert 'data-state="stale">stale</span>' in old and '<td class="num">1d</td>' in old
    ratio = re.search(r'<td class="num">([\d,]+)</td>\s*<td><span class="pill bad" data-state="stale"', old)
    assert ratio is not None and int(ratio.group(1).replace(",", "")) > 365  # years past a TTL of a day

    entities = table(text, "entities")
    customer = row(entities, "data-entity", "customer")
    assert "<td>customer_id</td>" in customer and 'href="/features/stats">stats</a>' in customer
    assert ESCAPED in customer  # its description
    no_script_of_ours(text)


# one view ----------------------------------------------------------------------------------


def test_a_view_page_shows_its_definition_features_and_versions(team: Team, world: dict[str, Any]) -> None:
    text = page(team, "vera", "/features/stats")
    assert '<h1>stats <span class="pill">v2</span></h1>' in text and 'id="older-version"' not in text
    definition = table(text, "definition")
    assert (
        "<code>event_ts</code>" in definition
        and '60d <span class="muted">(5,184,000 s)' in definition
        and "spend and orders" in definition
    )
    assert "recent.parquet</code>" in definition
    assert '<td class="name">spend</td><td><code>float64</code></td>' in table(text, "features")
    assert '<td class="name">orders</td><td><code>int64</code></td>' in table(text, "features")

    versions = table(text, "versions")
    assert versions.index('data-version="2"') < versions.index('data-version="1"')  # newest first
    newest, first = row(versions, "data-version", "2"), row(versions, "data-version", "1")
    assert 'class="current"' in newest and "shown" in newest and 'data-state="fresh"' in newest
    assert 'data-state="never"' in first and '<td class="num">30d</td>' in first
    registered = team.backends.services(local_owner()).features.versions("stats")
    assert f"<code>{registered[0].digest[:12]}</code>" in first
    assert 'data-state="fresh">fresh</span>' in table(text, "freshness")
    no_script_of_ours(text)


def test_an_older_version_is_shown_with_version(team: Team, world: dict[str, Any]) -> None:
    text = page(team, "vera", "/features/stats?version=1")
    assert '<h1>stats <span class="pill">v1</span></h1>' in text
    assert 'id="older-version"' in text and 'href="/features/stats">v2</a>' in text
    assert "30d" in table(text, "definition") and "spend and orders" not in table(text, "definition")
    assert 'class="current"' in row(table(text, "versions"), "data-version", "1")
    assert "never materialized" in table(text, "freshness")


def test_training_sets_built_from_the_view_link_to_their_datasets_and_models(
    team: Team, world: dict[str, Any]
) -> None:
    sets = table(page(team, "vera", "/features/stats"), "training-sets")
    first, second = world["first"], world["second"]
    assert (
        f'href="/datasets/churn-training?version={first.version}">churn-training@{first.version}</a>' in sets
    )
    assert f'href="/datasets/churn-latest?version={second.version}">churn-latest@{second.version}</a>' in sets
    assert sets.index("churn-latest@") < sets.index("churn-training@")  # newest first
    model = world["model"]
    assert f'href="/models/churn/versions/{model.version}">churn v{model.version}</a>' in sets
    assert 'href="/features/stats?version=1">v1</a>' in sets
    assert "No training set" in table(page(team, "vera", "/features/dormant"), "training-sets")


def test_the_deployments_that_declare_the_view_are_listed(team: Team, world: dict[str, Any]) -> None:
    serving = table(page(team, "vera", "/features/stats"), "deployments")
    pinned, newest = (
        row(serving, "data-deployment", "stats-pinned"),
        row(serving, "data-deployment", "stats-newest"),
    )
    assert 'href="/deployments/stats-pinned"' in pinned and "<code>stats@1:spend</code>" in pinned
    assert 'href="/features/stats?version=1">v1</a>' in pinned
    assert "<code>stats:*</code>" in newest and 'href="/features/stats?version=2">v2</a>' in newest
    assert "cancer-prod" not in serving  # it declares no features
    assert "No deployment declares" in table(page(team, "vera", "/features/old"), "deployments")


def test_hostile_source_transform_and_description_are_shown_as_text(
    team: Team, world: dict[str, Any]
) -> None:
    text = page(team, "vera", "/features/hostile")
    definition = table(text, "definition")
    assert f"<code>{html.escape(str(world['hostile_source']))}</code>" in definition
    assert definition.count(ESCAPED) == 3  # the source path, the description and a tag
    assert f'<pre id="transform">SELECT * FROM source -- {ESCAPED}</pre>' in text
    no_script_of_ours(text)
    no_script_of_ours(page(team, "vera", "/features"))


# not found, and not allowed ----------------------------------------------------------------


def test_an_unknown_view_or_version_is_a_not_found_page(team: Team, world: dict[str, Any]) -> None:
    assert "feature view &#39;nothing&#39; does not exist" in page(team, "vera", "/features/nothing", 404)
    assert "has no version 9; its versions are 1, 2" in page(team, "vera", "/features/stats?version=9", 404)
    hostile = page(team, "vera", "/features/<img src=x onerror=alert(1)>", 404)
    assert "&lt;img src=x onerror=alert(1)&gt;" in hostile
    no_script_of_ours(hostile)
    page(team, "vera", "/features/stats?version=0", 422)


def test_someone_without_a_role_sees_no_view(team: Team, world: dict[str, Any]) -> None:
    listed = page(team, "mallory", "/features").split("<main>")[1]
    assert "stats" not in listed and "No feature views yet" in listed and "No entities yet" in listed
    hidden = page(team, "mallory", "/features/stats", 404)  # no role where the feature store lives
    assert "project &#39;default&#39; does not exist" in hidden and "definition" not in hidden
