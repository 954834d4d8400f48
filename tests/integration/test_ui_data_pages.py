"""The web UI's datasets, pipelines and audit pages, over a real server and store."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

import loopline as ll
from loopline.core.clock import now_ms
from loopline.core.pipelines import PipelineRun, StepRun, StepStatus
from loopline.pipelines.execution import StepEnvironment
from loopline.pipelines.runner import PipelineFailed, PipelineRunner
from loopline.specs.contract import Contract
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import local_owner
from tests.integration.api_helpers import Team, sqlite_team
from tests.integration.ui_helpers import csrf_of, signed_in

PAYLOAD = "<script>alert(1)</script>"
ESCAPED = html.escape(PAYLOAD)  # &lt;script&gt;alert(1)&lt;/script&gt;
DROPPED = "mean radius"  # a column of `patients` that version 2 no longer has


@ll.step
def make(rows: int) -> pd.DataFrame:
    print(f"making {rows} rows {PAYLOAD}")
    return pd.DataFrame({"x": range(rows)})


@ll.step
def count(frame: pd.DataFrame) -> int:
    return len(frame)


@ll.step
def explode(frame: pd.DataFrame) -> int:
    raise ValueError("column 'x' is not what it was")


@ll.step
def after(value: int) -> int:
    return value + 1


@ll.pipeline
def flow(rows: int = 20):  # type: ignore[no-untyped-def]
    frame = make(rows)
    count(frame)
    return after(explode(frame))


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with sqlite_team(tmp_path_factory.mktemp("ui-data")) as running:
        yield running


@pytest.fixture(scope="module")
def world(team: Team) -> dict[str, Any]:
    """A second version of `patients` with a column named like a script, a run that read and
    validated it, a pipeline run twice (finished, failed, skipped, then cached steps), one
    still running, and an audit entry whose reason is a script."""
    services = team.backends.services(local_owner())
    datasets, tracking = services.datasets, services.tracking
    first = datasets.get("patients")
    frame = datasets.read(first).to_pandas().head(300).drop(columns=[DROPPED])
    labels = ["low", "high", "<b>odd</b>"]
    second, created = datasets.register(
        "patients", frame.assign(**{PAYLOAD: [labels[i % 3] for i in range(300)]})
    )
    assert created and second.version == 2

    reader = tracking.start_run("readers", run_name="reads-v2")
    tracking.log_input(reader.id, "patients", second.digest)
    contract = Contract.parse({"columns": {"target": {"type": "integer", "min": 0, "max": 1}}})
    assert datasets.validate(second, contract, run_id=reader.id).passed
    tracking.end_run(reader.id)

    tracker = Tracker(tracking, registry=services.registry, capture_context=False)
    runner = PipelineRunner(
        StepEnvironment(tracker, team.backends.blobs, services.registry, team.backends.store.pipelines)
    )
    outcomes = []
    for _ in range(2):  # the second time, the steps before the failure come from the cache
        with pytest.raises(PipelineFailed) as failed:
            runner.run(flow, {"rows": 20})
        outcomes.append(failed.value.run)
    tracker.close()

    live = tracking.start_run("readers", run_name="still-going")
    team.backends.store.pipelines.start_run(
        PipelineRun(live.id, "flows:live", "RUNNING", "local", {}, now_ms(), None)
    )
    team.backends.store.pipelines.begin_step(
        StepRun(live.id, "make", "flows.make", StepStatus.RUNNING, "k" * 64, None, None, 0, now_ms(), None)
    )
    services.registry.set_alias("cancer", "ui-check", 1, reason=PAYLOAD)
    return {"first": first, "second": second, "reader": reader.id, "runs": outcomes, "live": live.id}


def page(team: Team, user: str, path: str, status: int = 200) -> str:
    browser = signed_in(team, user)
    try:
        answer = browser.get(path)
    finally:
        browser.close()
    assert answer.status_code == status, (path, answer.status_code, answer.text[:500])
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    return answer.text


def figures(text: str) -> list[dict[str, Any]]:
    """The plotly figures a page hands its script, as the script reads them."""
    return [json.loads(html.unescape(raw)) for raw in re.findall(r"data-figure='([^']*)'", text)]


def table(text: str, table_id: str) -> str:
    found = re.search(rf'<table[^>]* id="{table_id}".*?</table>', text, re.S)
    assert found is not None, f"no table {table_id}"
    return found.group(0)


def no_script_of_ours(text: str) -> None:
    assert PAYLOAD not in text
    assert re.findall(r"<script\b[^>]*>", text) == ['<script src="/static/loopline.js" defer>']
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", text)  # no event-handler attributes


# datasets ------------------------------------------------------------------------------


def test_the_datasets_list_shows_each_dataset_with_its_newest_version(
    team: Team, world: dict[str, Any]
) -> None:
    text = page(team, "vera", "/datasets")
    rows = table(text, "datasets")
    assert 'href="/datasets/patients"' in rows and ">v2</a>" in rows
    assert ">300</td>" in rows and f">{len(world['second'].columns)}</td>" in rows
    no_script_of_ours(text)


def test_a_dataset_page_shows_its_versions_schema_and_a_chart_per_column(
    team: Team, world: dict[str, Any]
) -> None:
    second = world["second"]
    text = page(team, "vera", "/datasets/patients")
    assert "v1</a>" in table(text, "versions") and "v2</a>" in table(text, "versions")
    assert second.digest[:12] in text and world["first"].digest[:12] in text
    schema = table(text, "schema")
    for column in second.columns:
        assert f'<td class="name">{html.escape(column["name"])}</td>' in schema
    assert DROPPED not in schema and ">300</td>" in table(text, "version-facts")

    charts = figures(text)
    assert len(charts) == len(second.columns)
    profile = team.backends.services(local_owner()).datasets.reference_profile(second)
    for chart, (name, column) in zip(charts, profile.columns.items(), strict=True):
        bars = chart["data"][0]
        assert bars["type"] == "bar" and sum(bars["y"]) == column.count, name
    categories = charts[list(profile.columns).index(PAYLOAD)]["data"][0]["x"]
    assert sorted(categories) == sorted(
        ["low", "high", "&lt;b&gt;odd&lt;/b&gt;"]
    )  # plotly shows them as text

    older = page(team, "vera", "/datasets/patients?version=1")
    assert f">{world['first'].rows}</td>" in table(older, "version-facts")
    assert f'<td class="name">{DROPPED}</td>' in table(older, "schema")


def test_a_column_named_like_a_script_is_shown_as_text(team: Team, world: dict[str, Any]) -> None:
    text = page(team, "vera", "/datasets/patients")
    assert f'<td class="name">{ESCAPED}</td>' in table(text, "schema")
    assert f"<h3>{ESCAPED}</h3>" in text
    no_script_of_ours(text)


def test_the_diff_of_two_versions_shows_what_changed(team: Team, world: dict[str, Any]) -> None:
    text = page(team, "vera", "/datasets/patients?old=1&new=2")
    expected = team.backends.services(local_owner()).datasets.diff(world["first"], world["second"])
    schema = table(text, "diff-schema")
    assert f'<span class="pill ok">{ESCAPED}</span>' in schema
    assert f'<span class="pill bad">{DROPPED}</span>' in schema
    assert f"rows {world['first'].rows} → 300" in text
    changes = table(text, "diff-changes")
    assert len(re.findall(r'<td class="name">', changes)) == len(expected.changes) > 0
    for change in expected.changes:
        assert f'<td class="name">{html.escape(change["column"])}</td>' in changes
    # by default, the shown version against the one before it
    assert table(page(team, "vera", "/datasets/patients"), "diff-changes") == changes
    assert 'class="pill bad">' not in table(
        page(team, "vera", "/datasets/patients?old=2&new=2"), "diff-schema"
    )
    problem = page(team, "vera", "/datasets/patients?old=1")
    assert "choose both an old and a new version" in problem


def test_validations_of_the_runs_that_read_a_version_are_shown(team: Team, world: dict[str, Any]) -> None:
    rows = table(page(team, "vera", "/datasets/patients"), "validations")
    assert f'href="/runs/{world["reader"]}">reads-v2</a>' in rows
    assert '<span class="pill ok">passed</span>' in rows and "this version" in rows
    assert "No run recorded" in table(page(team, "vera", "/datasets/patients?version=1"), "validations")


def test_a_missing_dataset_or_version_is_a_not_found_page(team: Team, world: dict[str, Any]) -> None:
    assert "has no version 9" in page(team, "vera", "/datasets/patients?version=9", 404)
    page(team, "vera", "/datasets/nothing-here", 404)
    hidden = page(team, "mallory", "/datasets/patients", 404)  # no role where datasets live
    assert "project &#39;default&#39; does not exist" in hidden and "schema" not in hidden
    assert "patients" not in page(team, "mallory", "/datasets").split("<main>")[1]


# pipelines -----------------------------------------------------------------------------


def test_the_pipelines_page_lists_runs_schedules_triggers_and_jobs(team: Team, world: dict[str, Any]) -> None:
    text = page(team, "vera", "/pipelines")
    runs = table(text, "pipeline-runs")
    for run in world["runs"]:
        assert f'href="/pipelines/runs/{run.id}"' in runs
    assert "flows:nightly" in runs and '<span class="pill FAILED">' in runs
    assert '<span class="pill RUNNING">' in runs and 'data-refresh="5"' in text  # one still runs
    assert '<td class="name">nightly</td>' in table(text, "schedules")
    assert "0 3 * * *" in table(text, "schedules")
    assert '<td class="name">on-alert</td>' in table(text, "triggers")
    assert "cancer-watch" in table(text, "triggers")
    table(text, "jobs")
    no_script_of_ours(text)


def test_a_pipeline_run_shows_its_steps_as_a_graph_and_a_table(team: Team, world: dict[str, Any]) -> None:
    first, again = world["runs"]
    text = page(team, "vera", f"/pipelines/runs/{first.id}")
    steps = table(text, "steps")
    statuses = dict(re.findall(r'<tr data-step="(\w+)">.*?<span class="pill (\w+)">', steps, re.S))
    assert statuses == {"make": "FINISHED", "count": "FINISHED", "explode": "FAILED", "after": "SKIPPED"}
    assert "column &#39;x&#39; is not what it was" in steps
    assert f"making 20 rows {ESCAPED}" in steps  # the step's log, escaped
    assert 'data-refresh="5"' not in text
    no_script_of_ours(text)

    (graph,) = figures(text)
    nodes = {
        label.split("<br>")[0]: (trace["name"], x)
        for trace in graph["data"][1:]
        for label, x in zip(trace["text"], trace["x"], strict=True)
    }
    assert nodes == {
        "make": ("FINISHED", 0.0),
        "count": ("FINISHED", 1.0),
        "explode": ("FAILED", 1.0),
        "after": ("SKIPPED", 2.0),
    }
    edges = graph["data"][0]
    assert edges["mode"] == "lines" and edges["x"].count(None) == 2  # make→count, make→explode

    cached = page(team, "vera", f"/pipelines/runs/{again.id}")
    statuses = dict(
        re.findall(r'<tr data-step="(\w+)">.*?<span class="pill (\w+)">', table(cached, "steps"), re.S)
    )
    assert statuses == {"make": "CACHED", "count": "CACHED", "explode": "FAILED", "after": "SKIPPED"}
    assert "2 from the cache" in cached
    (graph,) = figures(cached)
    assert [t["marker"]["symbol"] for t in graph["data"][1:] if t["name"] == "CACHED"] == ["diamond"]


def test_a_running_pipeline_run_refreshes_itself(team: Team, world: dict[str, Any]) -> None:
    text = page(team, "vera", f"/pipelines/runs/{world['live']}")
    assert '<div id="pipeline-live" data-refresh="5">' in text
    assert "so far" in table(text, "steps")
    page(team, "vera", "/pipelines/runs/no-such-run", 404)
    assert "No steps recorded." in page(team, "vera", f"/pipelines/runs/{team.ids['run_id']}")


# audit ---------------------------------------------------------------------------------


def test_the_audit_trail_shows_entries_with_their_change_and_escaped_reason(
    team: Team, world: dict[str, Any]
) -> None:
    text = page(team, "admin", "/audit?size=200")
    entries = table(text, "audit-entries")
    for action in ("dataset.register", "alias.move", "schedule.create", "run.validation"):
        assert f'<span class="pill">{action}</span>' in entries, action
    assert f'<td class="reason">{ESCAPED}</td>' in entries
    assert "<details><summary>before / after</summary><pre>" in entries
    no_script_of_ours(text)


def test_the_audit_trail_is_filtered_and_paged(team: Team, world: dict[str, Any]) -> None:
    trail = team.backends.services(local_owner()).audit
    registered = trail.entries(action="dataset.")
    text = page(team, "admin", "/audit?action=dataset.")
    assert re.findall(r'<span class="pill">([\w.]+)</span>', table(text, "audit-entries")) == [
        e.action for e in registered
    ]
    by_owner = page(team, "admin", "/audit?actor=nobody-at-all")
    assert "No entries match." in by_owner
    assert "No entries match." in page(team, "admin", "/audit?since=2999-01-01")
    assert "write a time as YYYY-MM-DD" in page(team, "admin", "/audit?since=yesterday")
    assert "No entries match." in page(team, "admin", "/audit?until=1970-01-02")
    everything = trail.entries(limit=10_000)
    middle = everything[len(everything) // 2]
    until = datetime.fromtimestamp(middle.at / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    shown = table(page(team, "admin", f"/audit?size=200&until={until}"), "audit-entries")
    shown_ids = [int(i) for i in re.findall(r'<tr>\s*<td class="num">(\d+)</td>', shown)]
    assert shown_ids == [e.id for e in everything if e.at <= middle.at][:200] and middle.id in shown_ids

    browser = signed_in(team, "admin")  # signing in is audited: one session for the pages
    try:
        first = browser.get("/audit?size=3").text
        newest = [e.id for e in trail.entries(limit=6)]
        link = re.search(r'id="next-page" href="([^"]+)"', first)
        assert link is not None and f"before={newest[2]}" in link.group(1)  # by key
        second = browser.get(html.unescape(link.group(1))).text
    finally:
        browser.close()
    ids = lambda text: [int(i) for i in re.findall(r'<tr>\s*<td class="num">(\d+)</td>', text)]  # noqa: E731
    assert ids(first) == newest[:3]
    assert ids(second) == newest[3:6] and 'id="newest-page"' in second


def test_verify_reports_an_intact_chain(team: Team, world: dict[str, Any]) -> None:
    text = page(team, "admin", "/audit")
    assert (
        '<button type="button" data-method="GET" data-url="/api/v1/audit/verify" data-show="verification">'
        in text
    )
    assert '<pre id="verification"' in text
    browser = signed_in(team, "admin")
    try:  # as the button's script asks
        answer = browser.get("/api/v1/audit/verify", headers={"x-csrf-token": csrf_of(text)})
    finally:
        browser.close()
    assert answer.status_code == 200
    check = answer.json()
    assert check["intact"] is True and check["problems"] == [] and check["entries"] > 10


def test_only_administrators_read_the_audit_trail(team: Team, world: dict[str, Any]) -> None:
    for user in ("vera", "olga"):
        text = page(team, user, "/audit", 403)
        assert "only an administrator may read the audit trail" in text
        assert "audit-entries" not in text
