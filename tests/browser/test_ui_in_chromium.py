"""The web UI in Chromium: every page of the demo's store, the keyboard, lazy charts,
hostile strings, sign-in and roles."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from loopline.core.entities import Metric
from loopline.core.features import Entity, Feature, FeatureView
from loopline.demo import DATASET, DEPLOYMENT, MODEL, MONITOR
from loopline.wiring.backends import Backends, local_owner
from tests.browser.conftest import Watched
from tests.integration.api_helpers import Team

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>window.__owned=1;alert('script')</script>",
    "<img src=x onerror=\"window.__owned=1;alert('img')\">",
    "\"'><svg onload=\"window.__owned=1;alert('svg')\">",
]


def _visit(watched: Watched, url: str) -> None:
    answer = watched.page.goto(url)
    assert answer is not None and answer.status == 200, f"{url}: {answer.status if answer else 'no answer'}"
    expect(watched.page.locator("h1")).to_be_visible()


def _draw_every_chart(watched: Watched) -> None:
    """Scroll each chart into view and wait until it is drawn."""
    charts = watched.page.locator(".chart, .plot")
    for i in range(charts.count()):
        chart = charts.nth(i)
        if chart.is_hidden():
            continue
        chart.scroll_into_view_if_needed()
        expect(chart).to_have_attribute("data-drawn", "1", timeout=15_000)


def test_every_page_of_the_demo_shows_the_store_without_errors(
    demo_ui: tuple[str, Backends], watched: Watched
) -> None:
    url, backends = demo_ui
    services = backends.services(local_owner())
    experiments = services.tracking.list_experiments()
    _visit(watched, f"{url}/experiments")
    expect(watched.page.locator("#experiments tbody tr")).to_have_count(len(experiments))
    for experiment in experiments:
        runs = services.tracking.search_runs(experiment.id, max_results=50).runs
        _visit(watched, f"{url}/runs?experiment={experiment.id}")
        expect(watched.page.locator("#runs tbody tr[data-href]")).to_have_count(len(runs))
    run = services.tracking.search_runs(None, filter="metrics.score > 0", max_results=2).runs  # trials
    assert len(run) == 2
    for shown in run:
        _visit(watched, f"{url}/runs/{shown.id}")
        expect(watched.page.locator("#params tr")).to_have_count(max(len(shown.params), 1))
        _draw_every_chart(watched)
    _visit(watched, f"{url}/compare?{urlencode({'run': [r.id for r in run]}, doseq=True)}")
    _draw_every_chart(watched)
    pipeline_run = services.automation.pipeline_runs(limit=1)[0]
    for path in (
        "/models",
        f"/models/{MODEL}",
        f"/models/{MODEL}/versions/1",
        f"/models/{MODEL}/versions/2",
        "/deployments",
        f"/deployments/{DEPLOYMENT}",
        "/monitors",
        f"/monitors/{MONITOR}",
        "/datasets",
        f"/datasets/{DATASET}",
        "/pipelines",
        f"/pipelines/runs/{pipeline_run.id}",
        "/audit",
    ):
        _visit(watched, f"{url}{path}")
        _draw_every_chart(watched)
    assert watched.errors == []


def test_every_page_of_the_fixture_store_shows_without_errors(team: Team, watched: Watched) -> None:
    """The test fixtures' store holds what the demo does not: a pending approval, another
    project, an evaluation, a schedule and a trigger."""
    _sign_in(watched, team, "admin")
    ids = team.ids
    for path in (
        "/experiments",
        f"/runs?experiment={ids['experiment_id']}",
        f"/runs/{ids['run_id']}",
        f"/runs/{ids['run_id']}/artifacts?path=notes",
        f"/runs/{ids['run_id']}/artifacts?name=notes%2Fa.txt",
        "/models",
        "/models/cancer",
        "/models/cancer/versions/1",
        "/models/secret-model",
        "/deployments/cancer-prod",
        "/monitors/cancer-watch",
        "/datasets/patients",
        "/features",
        "/pipelines",
        "/audit",
    ):
        _visit(watched, f"{team.url}{path}")
        _draw_every_chart(watched)
    expect(watched.page.locator("h1")).to_be_visible()
    assert watched.errors == []


def test_the_runs_table_works_from_the_keyboard(demo_ui: tuple[str, Backends], watched: Watched) -> None:
    url, backends = demo_ui
    experiment = backends.services(local_owner()).tracking.list_experiments()[0]
    _visit(watched, f"{url}/runs?experiment={experiment.id}")
    rows = watched.page.locator("#runs tbody tr[data-href]")
    rows.first.focus()
    watched.page.keyboard.press("ArrowDown")
    second = rows.nth(1)
    expect(second).to_be_focused()
    watched.page.keyboard.press(" ")
    expect(second.locator('input[type="checkbox"]')).to_be_checked()
    watched.page.keyboard.press("ArrowUp")
    expect(rows.first).to_be_focused()
    watched.page.keyboard.press("ArrowDown")
    target = second.get_attribute("data-href")
    watched.page.keyboard.press("Enter")
    watched.page.wait_for_url(f"{url}{target}")
    assert watched.errors == []


def test_charts_are_drawn_only_when_scrolled_into_view(
    demo_ui: tuple[str, Backends], watched: Watched
) -> None:
    url, backends = demo_ui
    tracking = backends.services(local_owner()).tracking
    run = tracking.start_run("many-keys")
    tracking.log_batch(
        run.id, [Metric(f"key_{k:03d}", float(s), s, 1000 + s) for k in range(60) for s in range(50)]
    )
    _visit(watched, f"{url}/runs/{run.id}")
    charts = watched.page.locator(".chart")
    expect(charts).to_have_count(60)
    watched.page.wait_for_timeout(500)
    assert watched.page.locator(".chart[data-drawn]").count() < 60  # the ones far below wait
    charts.nth(59).scroll_into_view_if_needed()
    expect(charts.nth(59)).to_have_attribute("data-drawn", "1", timeout=15_000)
    assert watched.errors == []


def test_hostile_strings_are_shown_as_text_and_never_run(team: Team, watched: Watched) -> None:
    services = team.backends.services(local_owner())
    tracking = services.tracking
    ids = []
    for payload in PAYLOADS:
        run = tracking.start_run(payload, run_name=payload)
        tracking.log_batch(run.id, [Metric("m", 1.0, 0, 1)], params={"p": payload}, tags={"t": payload})
        ids.append(run.id)
    services.registry.update_model("cancer", description=PAYLOADS[0])
    hostile_view = FeatureView(
        name="hostile_view", entities=("customer",), source=f"/nowhere/{PAYLOADS[1]}.parquet",
        event_time="event_ts", features=(Feature("spend", "float64"),), description=PAYLOADS[0],
        transform=f"SELECT * FROM source -- {PAYLOADS[2]}", tags={"note": PAYLOADS[0]},
    )  # fmt: skip
    services.features.apply([Entity("customer", ("customer_id",), PAYLOADS[2])], [hostile_view])
    _sign_in(watched, team, "admin")
    experiments = [tracking.get_experiment(p).id for p in PAYLOADS]
    pages = [
        "/experiments",
        f"/runs?{urlencode({'experiment': experiments, 'column': ['param:p', 'tag:t']}, doseq=True)}",
        *(f"/runs/{run_id}" for run_id in ids),
        f"/compare?{urlencode({'run': ids}, doseq=True)}",
        "/models",
        "/models/cancer",
        "/features",
        "/features/hostile_view",
        "/audit",
    ]
    for path in pages:
        _visit(watched, f"{team.url}{path}")
        _draw_every_chart(watched)
        assert watched.page.evaluate("window.__owned") is None, path
    _visit(watched, f"{team.url}/runs/{ids[1]}")
    expect(watched.page.locator("h1")).to_contain_text(PAYLOADS[1])  # shown, as text
    _visit(watched, f"{team.url}/features/hostile_view")
    expect(watched.page.locator("#transform")).to_contain_text(PAYLOADS[2])
    expect(watched.page.locator("#definition")).to_contain_text(PAYLOADS[1])  # the source path
    assert watched.dialogs == [] and watched.errors == []


def _sign_in(watched: Watched, team: Team, user: str, then: str = "/experiments") -> None:
    watched.page.goto(f"{team.url}{then}")
    watched.page.wait_for_url("**/login?next=**")
    watched.page.fill("#token", team.tokens[user])
    watched.page.click("#sign-in button[type=submit]")
    watched.page.wait_for_url(f"{team.url}{then}")


def test_a_viewer_signs_in_and_is_offered_no_actions(team: Team, watched: Watched) -> None:
    experiment = team.ids["experiment_id"]
    _sign_in(watched, team, "vera", f"/runs?experiment={experiment}")
    expect(watched.page.locator("#runs tbody tr[data-href]").first).to_be_visible()
    expect(watched.page.get_by_role("button", name="Delete selected")).to_have_count(0)
    expect(watched.page.get_by_role("button", name="Tag selected")).to_have_count(0)
    watched.page.click('[data-action="sign-out"]')
    watched.page.wait_for_url("**/login")
    watched.page.goto(f"{team.url}/experiments")
    watched.page.wait_for_url("**/login?next=%2Fexperiments")


def test_an_editor_tags_and_deletes_selected_runs(team: Team, watched: Watched) -> None:
    tracking = team.backends.services(local_owner()).tracking
    runs = [tracking.start_run("editing") for _ in range(3)]
    experiment = tracking.get_experiment("editing").id
    _sign_in(watched, team, "alice", f"/runs?experiment={experiment}")
    page = watched.page
    page.check(f'input[value="{runs[0].id}"]')
    page.check(f'input[value="{runs[1].id}"]')
    page.once("dialog", lambda dialog: dialog.accept("stage=review"))
    watched.dialogs.clear()
    page.remove_listener("dialog", watched._dialog)
    page.click("text=Tag selected")
    expect(page.locator(f'input[value="{runs[0].id}"]')).not_to_be_checked()  # the page reloaded
    assert tracking.get_run(runs[0].id).tags.get("stage") == "review"
    assert "stage" not in tracking.get_run(runs[2].id).tags
    page.check(f'input[value="{runs[2].id}"]')
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Delete selected")
    expect(page.locator(f'tr[data-href="/runs/{runs[2].id}"]')).to_have_count(0)
    assert tracking.get_run(runs[2].id).deleted


def test_requesting_a_protected_alias_files_a_request_for_a_second_person(
    team: Team, watched: Watched
) -> None:
    registry = team.backends.services(local_owner()).registry
    before = {r.id for r in registry.alias_requests("cancer", "pending")}
    _sign_in(watched, team, "maya", "/models/cancer")
    page = watched.page
    page.remove_listener("dialog", watched._dialog)
    page.once("dialog", lambda dialog: dialog.accept("ready for gold"))
    page.locator('tr[data-version="1"] button', has_text="Request @gold here").click()
    expect(page.locator("#pending-requests tr", has_text="ready for gold")).to_have_count(
        1
    )  # the page reloaded
    (filed,) = [r for r in registry.alias_requests("cancer", "pending") if r.id not in before]
    assert (filed.alias, filed.version, filed.requested_by) == ("gold", 1, "maya")
    assert registry.get_model("cancer").aliases.get("gold") != 1  # nothing moved: it waits


def test_a_hundred_runs_compare_with_curves_and_parallel_coordinates(team: Team, watched: Watched) -> None:
    tracking = team.backends.services(local_owner()).tracking
    ids = []
    for i in range(100):
        run = tracking.start_run("hundred")
        metrics = [Metric("loss", 1 / (s + 1 + i), s, 1000 + s) for s in range(0, 1000, 10)]
        tracking.log_batch(run.id, metrics, params={"lr": str(0.001 * (i + 1)), "depth": str(i % 7)})
        ids.append(run.id)
    _sign_in(watched, team, "vera", f"/compare?{urlencode({'run': ids}, doseq=True)}")
    expect(watched.page.locator("#comparison thead th")).to_have_count(101)
    _draw_every_chart(watched)
    assert watched.page.locator("#overlay .scatterlayer .trace").count() == 100
    assert watched.errors == []
