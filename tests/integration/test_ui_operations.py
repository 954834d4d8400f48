"""The operations pages of the web UI, over a real team server on 127.0.0.1: deployments
(policy, revisions, roll-back, live traffic, the arms compared, the retraining loop) and
monitors (drift over time, distributions, performance, alerts, the sandboxed report), fed
by real predictions through a real model server."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
import markupsafe
import pandas as pd
import pytest

from loopline.client.services import RemoteServices
from loopline.core.traffic import TrafficPolicy
from loopline.specs.monitor import MonitorSpec
from loopline.wiring.backends import Backends, local_owner
from loopline.wiring.local import LocalServices
from tests.integration.api_helpers import Team, sqlite_team
from tests.integration.serving_helpers import cancer_data, running_server
from tests.integration.ui_helpers import csrf_of, signed_in

SCRIPT = "<script>alert('{}')</script>"
SHIFTED = [c for c in cancer_data()[0].columns if c.startswith("mean")]


@dataclass
class Sent:
    """How many requests the model server answered and refused."""

    answered: int = 0
    refused: int = 0


@pytest.fixture(scope="module")
def sent() -> Sent:
    return Sent()


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, sent: Sent) -> Iterator[Team]:
    """The team server's world, then operated: a loop that failed to retrain, a canary of v2
    with real traffic (some refused, most labelled), a monitor that saw the inputs drift
    and recover and drift again, and a second deployment with a policy to roll back."""
    with sqlite_team(tmp_path_factory.mktemp("ui-operations")) as running:
        _operate(running.backends, sent)
        yield running


def owner(team: Team) -> LocalServices:
    return team.backends.services(local_owner())


def _operate(backends: Backends, sent: Sent) -> None:
    services = backends.services(local_owner())
    services.loops.start("cancer-prod", SCRIPT.format("loop"))  # no pipeline runner here: it fails
    canary = TrafficPolicy.canary("models:/cancer@champion", "models:/cancer/2", 30)
    services.deployments.set_traffic("cancer-prod", canary, reason=SCRIPT.format("revision") + " try v2")
    spec = MonitorSpec.parse(
        {
            "window": {"rows": 200},
            "alerts": [{"name": SCRIPT.format("alert"), "value": "drift.share", "above": 0.3}],
        }
    )
    services.monitors.create("cancer-drift", "cancer-prod", "patients", target="target", spec=spec)
    features, target = cancer_data()
    calm, shifted = features.sample(200, random_state=1), features.sample(200, random_state=2)
    shifted[SHIFTED] = shifted[SHIFTED] * 1.6
    for frame, bad in ((calm, 3), (shifted, 0), (calm, 0), (shifted, 0)):
        send(backends, sent, frame, target.loc[frame.index], bad)
        services.monitors.run("cancer-drift")
    services.deployments.create("cancer-shadow", TrafficPolicy.single("models:/cancer/1"))
    shadow = TrafficPolicy.shadow("models:/cancer/1", "models:/cancer/2")
    services.deployments.set_traffic("cancer-shadow", shadow, reason="compare v2 quietly")


def send(backends: Backends, sent: Sent, frame: pd.DataFrame, labels: pd.Series, bad: int) -> None:
    """`frame` to cancer-prod in requests of ten rows, labels for every row, and `bad`
    requests the model refuses."""
    with running_server(backends, ("cancer-prod",)) as server, server.client() as client:
        feedback = []
        for start in range(0, len(frame), 10):
            records = frame.iloc[start : start + 10].to_dict(orient="records")
            answer = client.post("/v1/deployments/cancer-prod/predict", json={"records": records})
            assert answer.status_code == 200, answer.text
            feedback += [
                {"request_id": answer.json()["request_id"], "row": i, "label": int(labels.iloc[start + i])}
                for i in range(len(records))
            ]
            sent.answered += 1
        for _ in range(bad):
            record = {**frame.iloc[0].to_dict(), "mean radius": "x"}
            refused = client.post("/v1/deployments/cancer-prod/predict", json={"records": [record]})
            assert refused.status_code == 422
            sent.refused += 1
        assert (
            client.post("/v1/deployments/cancer-prod/feedback", json={"labels": feedback}).status_code == 202
        )


# reading pages --------------------------------------------------------------------------------


class Page(HTMLParser):
    """A page as tests read it: its tables' cell texts by id, its figures, the ids it holds,
    its scripts and any event-handler attribute."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.tables: dict[str, list[list[str]]] = {}
        self.figures: dict[str, dict[str, Any]] = {}
        self.plots: list[dict[str, Any]] = []
        self.ids: dict[str, dict[str, str]] = {}
        self.scripts: list[dict[str, str]] = []
        self.handlers: list[str] = []
        self._table: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.handlers += [k for k in found if k.startswith("on")]
        if "id" in found:
            self.ids[found["id"]] = {"tag": tag, **found}
        if tag == "script":
            self.scripts.append(found)
        if "data-figure" in found:
            figure = json.loads(found["data-figure"])
            self.plots.append(figure)
            if "id" in found:
                self.figures[found["id"]] = figure
        if tag == "table":
            self._table.append(found.get("id", ""))
            self.tables.setdefault(found.get("id", ""), [])
        elif tag == "tr" and self._table:
            self.tables[self._table[-1]].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            rows = self.tables[self._table[-1]]
            if rows:
                rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table" and self._table:
            self._table.pop()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, table: str) -> list[list[str]]:
        """The body rows of a table (its header row left out)."""
        return [row for row in self.tables[table] if row][1:]


def page(client: httpx.Client, path: str, status: int = 200) -> Page:
    answer = client.get(path)
    assert answer.status_code == status, answer.text[:2000]
    assert answer.headers["content-type"].startswith("text/html")
    found = Page(answer.text)
    # the Content-Security-Policy forbids inline script: every script is a file, no handler attribute
    assert all(s.get("src") for s in found.scripts) and found.handlers == []
    return found


def escaped(text: str) -> str:
    """`text` as Jinja's autoescaping writes it."""
    return str(markupsafe.escape(text))


@pytest.fixture(scope="module")
def vera(team: Team) -> Iterator[httpx.Client]:
    with closing(signed_in(team, "vera")) as client:
        yield client


# deployments ----------------------------------------------------------------------------------


def test_the_list_shows_every_deployment_with_its_policy(team: Team, vera: httpx.Client) -> None:
    shown = page(vera, "/deployments")
    rows = {row[0]: row for row in shown.rows("deployments")}
    for deployment in owner(team).deployments.list_all():
        _, summary, revision, _, created_by = rows[deployment.name]
        assert summary == TrafficPolicy.from_dict(deployment.policy).describe()
        assert int(revision) == deployment.revision and created_by == deployment.created_by
    assert set(rows) == {"cancer-prod", "cancer-shadow"}


def test_a_deployment_shows_its_policy_served_versions_and_revisions(team: Team, vera: httpx.Client) -> None:
    shown = page(vera, "/deployments/cancer-prod")
    policy = owner(team).deployments.policy("cancer-prod")
    assert policy.kind == "canary"
    arms = {row[0]: row for row in shown.rows("arms")}
    assert arms["stable"][1:] == ["models:/cancer@champion", "70", "70.0%", "v1"]
    assert arms["canary"][1:] == ["models:/cancer/2", "30", "30.0%", "v2"]
    revisions = owner(team).deployments.revisions("cancer-prod")
    rows = shown.rows("revisions")
    assert [row[0].split()[0] for row in rows] == [str(r.revision) for r in reversed(revisions)]
    assert rows[0][0].endswith("current") and rows[0][4] == revisions[-1].reason
    assert [row[3] for row in rows] == [
        TrafficPolicy.from_dict(r.policy).describe() for r in reversed(revisions)
    ]
    # the reasons people typed are text, never markup
    assert SCRIPT.format("revision") not in shown.text and escaped(SCRIPT.format("revision")) in shown.text


def test_a_shadow_shows_as_a_copy_of_every_request(team: Team, vera: httpx.Client) -> None:
    shown = page(vera, "/deployments/cancer-shadow")
    arms = {row[0]: row for row in shown.rows("arms")}
    assert arms["primary"][3] == "100.0%" and arms["shadow shadow"][3] == "copy of every request"
    assert "no-traffic" in shown.ids and "no-loop" in shown.ids


def test_the_live_charts_count_every_request_per_arm_and_version(
    team: Team, vera: httpx.Client, sent: Sent
) -> None:
    shown = page(vera, "/deployments/cancer-prod?window=all")
    assert shown.ids["live"]["data-refresh"] == "10"
    assert vera.get("/deployments/cancer-prod?window=1y").status_code == 422  # not a window offered
    rate, latency, errors = shown.plots
    served = {trace["name"]: sum(trace["customdata"]) for trace in rate["data"]}
    assert set(served) == {"stable v1", "canary v2"} and sum(served.values()) == sent.answered
    assert sum(sum(trace["customdata"]) for trace in errors["data"]) == sent.refused
    assert {t["name"] for t in latency["data"]} == {f"{a} {q}" for a in served for q in ("p50", "p95", "p99")}
    for trace in latency["data"]:
        assert all(v is None or v > 0 for v in trace["y"]) and any(v is not None for v in trace["y"])
    # the same counts as the service's own report of the log
    report = owner(team).deployments.report("cancer-prod")
    assert served == {f"{a.arm} v{a.versions[0]}": a.requests for a in report.arms}
    rows = {row[0]: row for row in shown.rows("arm-report")}
    for arm in report.arms:
        assert [int(rows[arm.arm][2]), int(rows[arm.arm][3]), int(rows[arm.arm][9])] == [
            arm.requests,
            arm.errors,
            arm.labelled,
        ]
        assert rows[arm.arm][10] == f"accuracy {arm.accuracy:.6g}"
    compared = {row[0] for row in shown.rows("comparisons")}
    assert compared == {c["metric"] for c in report.comparisons} == {"latency_ms", "error_rate", "accuracy"}
    assert report.sample_ratio is not None
    observed = {row[0]: int(row[1]) for row in shown.rows("sample-ratio")}
    assert observed == report.sample_ratio["observed"]


def test_the_traffic_series_is_the_same_through_the_api(team: Team, sent: Sent) -> None:
    remote = RemoteServices(team.connection("vera")).deployments.traffic("cancer-prod")
    local = owner(team).deployments.traffic("cancer-prod")
    assert sum(p.requests for p in remote.points) == sum(p.requests for p in local.points) == sent.answered
    assert sum(p.errors for p in remote.points) == sent.refused
    assert {(p.arm, p.version) for p in remote.points} == {("stable", 1), ("canary", 2)}


def test_the_loop_timeline_shows_each_decision_and_its_evidence(team: Team, vera: httpx.Client) -> None:
    shown = page(vera, "/deployments/cancer-prod")
    events = owner(team).loops.events("cancer-prod")
    rows = shown.rows("loop-events")
    assert [row[1] for row in rows] == [e.kind for e in reversed(events)]
    assert {"declared", "triggered", "failed"} <= {row[1] for row in rows}
    failed = next(e for e in events if e.kind == "failed")
    assert "traceback" in failed.evidence and "<details><summary>evidence</summary><pre>" in shown.text
    assert json.dumps(failed.evidence, indent=2, sort_keys=True) in html.unescape(shown.text)
    assert SCRIPT.format("loop") not in shown.text and escaped(SCRIPT.format("loop")) in shown.text
    state = {row[0]: row[1] for row in shown.tables["loop"] if len(row) == 2}
    assert state["state"] == owner(team).loops.get("cancer-prod").state.value


@pytest.mark.parametrize(
    ("user", "allowed"), [("vera", False), ("alice", False), ("maya", True), ("olga", True), ("admin", True)]
)
def test_only_who_may_change_traffic_gets_a_roll_back_button(team: Team, user: str, allowed: bool) -> None:
    with closing(signed_in(team, user)) as client:
        shown = page(client, "/deployments/cancer-shadow")
    assert ("roll-back" in shown.ids) is allowed
    if allowed:
        button = shown.ids["roll-back"]
        assert (
            button["data-method"] == "POST"
            and button["data-url"] == "/api/v1/deployments/cancer-shadow/rollback"
        )
        assert "data-reason" in button and json.loads(button["data-body"]) == {}


def test_a_forged_roll_back_is_refused_and_a_real_one_is_recorded(team: Team) -> None:
    deployments = owner(team).deployments
    before = deployments.revisions("cancer-shadow")
    url = "/api/v1/deployments/cancer-shadow/rollback"
    reason = SCRIPT.format("rollback") + " v2 disagrees"
    with closing(signed_in(team, "maya")) as maya, closing(signed_in(team, "vera")) as vera:
        token = csrf_of(maya.get("/deployments/cancer-shadow").text)
        assert maya.post(url, json={"reason": reason}).status_code == 403  # the cookie alone: forged
        assert maya.post(url, json={"reason": reason}, headers={"x-csrf-token": "0" * 64}).status_code == 403
        viewer_token = csrf_of(vera.get("/deployments/cancer-shadow").text)
        assert (
            vera.post(url, json={"reason": reason}, headers={"x-csrf-token": viewer_token}).status_code == 403
        )
        assert deployments.revisions("cancer-shadow") == before
        done = maya.post(url, json={"reason": reason}, headers={"x-csrf-token": token})
        assert done.status_code == 200, done.text
        after = deployments.revisions("cancer-shadow")
        assert len(after) == len(before) + 1 and after[-1].policy == before[-2].policy
        assert after[-1].actor == "maya" and after[-1].reason == reason
        shown = page(maya, "/deployments/cancer-shadow")
    assert shown.rows("revisions")[0][4] == reason and escaped(reason) in shown.text
    assert SCRIPT.format("rollback") not in shown.text
    assert deployments.get("cancer-shadow").policy == before[-2].policy


def test_names_that_are_markup_are_shown_as_text(team: Team, vera: httpx.Client) -> None:
    for path in ("/deployments/", "/monitors/"):
        answer = vera.get(path + "%3Cscript%3Ealert(1)")
        assert answer.status_code == 400
        assert "<script>alert(1)" not in answer.text and "&lt;script&gt;alert(1)" in answer.text
    shown = page(vera, "/monitors/cancer-drift?column=%3Cscript%3Ealert(2)%3C%2Fscript%3E")
    assert "<script>alert(2)" not in shown.text
    assert escaped("<script>alert(2)</script>") in shown.text and "no-distribution" in shown.ids


def test_who_holds_no_role_on_operations_sees_no_deployment(team: Team) -> None:
    with closing(signed_in(team, "mallory")) as mallory:
        assert page(mallory, "/deployments").rows("deployments")[0][0].startswith("No deployments")
        page(mallory, "/deployments/cancer-prod", status=404)
        assert page(mallory, "/monitors").rows("monitors")[0][0].startswith("No monitors")


# monitors -------------------------------------------------------------------------------------


def test_the_list_shows_every_monitor_its_last_run_and_firing_alerts(team: Team, vera: httpx.Client) -> None:
    rows = {row[0]: row for row in page(vera, "/monitors").rows("monitors")}
    monitors = owner(team).monitors
    assert set(rows) == {"cancer-watch", "cancer-drift"}
    for name, row in rows.items():
        last = monitors.runs(name, 1)[0]
        assert row[1] == "cancer-prod" and row[2].endswith(f"(run {last.id})") and int(row[3]) == last.rows
        assert int(row[5]) == len(monitors.alerts(name, "firing"))
    assert int(rows["cancer-drift"][5]) == 1


def test_drift_over_time_is_a_heat_map_of_every_column_and_run(team: Team, vera: httpx.Client) -> None:
    shown = page(vera, "/monitors/cancer-drift")
    runs = owner(team).monitors.runs("cancer-drift", with_details=True)[::-1]
    heatmap = shown.figures["drift-heatmap"]["data"][0]
    assert heatmap["type"] == "heatmap" and len(heatmap["x"]) == len(runs) == 4
    assert heatmap["y"] == [d["column"] for d in runs[-1].details["drift"]]
    row = heatmap["z"][heatmap["y"].index("mean radius")]
    calm_1, shifted_1, calm_2, shifted_2 = row
    assert shifted_1 >= 1 and shifted_2 >= 1 and calm_1 < 1 and calm_2 < 1  # 1 is the threshold
    for run, column in zip(runs, zip(*heatmap["z"], strict=True), strict=True):
        drifted = {d["column"] for d in run.details["drift"] if d["drifted"]}
        assert {heatmap["y"][i] for i, z in enumerate(column) if z is not None and z >= 1} == drifted


def test_a_column_is_shown_in_the_reference_and_in_the_window(team: Team, vera: httpx.Client) -> None:
    monitors = owner(team).monitors
    newest = monitors.run_record("cancer-drift")
    shown = page(vera, "/monitors/cancer-drift")
    figure = shown.figures["distribution"]
    assert shown.ids["column-choice"]["tag"] == "form"
    column = figure["layout"]["title"]["text"].split(":")[0]
    assert column in newest.details["drifted_columns"]  # the first shown is a drifted one
    first = monitors.run_record("cancer-drift", 1)
    chosen = page(vera, "/monitors/cancer-drift?run=1&column=mean+area").figures["distribution"]
    reference, current = chosen["data"]
    histogram = first.details["histograms"]["mean area"]
    assert reference["y"] == histogram["reference"] and current["y"] == histogram["current"]
    assert len(reference["x"]) == len(histogram["edges"]) - 1
    output = page(vera, "/monitors/cancer-drift?column=prediction").figures["distribution"]
    assert output["data"][0]["x"] == newest.details["histograms_outputs"]["prediction"]["categories"]


def test_realized_and_estimated_performance_are_drawn_over_time(team: Team, vera: httpx.Client) -> None:
    shown = page(vera, "/monitors/cancer-drift")
    runs = owner(team).monitors.runs("cancer-drift")[::-1]
    traces = {t["name"]: t for t in shown.figures["performance"]["data"]}
    assert {"perf.accuracy", "est.accuracy"} <= set(traces)
    for key, trace in traces.items():
        assert trace["y"] == [r.values.get(key) for r in runs]
        assert trace["line"]["dash"] == ("dash" if key.startswith("est.") else "solid")


def test_alerts_firing_and_resolved_are_listed_as_text(team: Team, vera: httpx.Client) -> None:
    shown = page(vera, "/monitors/cancer-drift")
    alerts = owner(team).monitors.alerts("cancer-drift")
    rows = shown.rows("alerts")
    assert sorted(row[0] for row in rows) == sorted(a.status for a in alerts) == ["firing", "resolved"]
    assert [row[2] for row in rows] == [a.message for a in alerts]
    assert SCRIPT.format("alert") not in shown.text and escaped(SCRIPT.format("alert")) in shown.text


def test_a_monitor_that_saw_no_traffic_says_so(team: Team, vera: httpx.Client) -> None:
    shown = page(vera, "/monitors/cancer-watch")
    assert {"no-drift", "no-performance", "no-distribution"} <= set(shown.ids)
    assert shown.rows("alerts")[0][0] == "no alert has fired"


def test_the_full_report_is_framed_in_a_sandbox(team: Team, vera: httpx.Client) -> None:
    shown = page(vera, "/monitors/cancer-drift")
    frames = re.findall(r"<iframe[^>]*>", shown.text)
    assert len(frames) == 1 and 'sandbox="allow-scripts"' in frames[0]
    src = html.unescape(re.search(r'src="([^"]+)"', frames[0]).group(1))  # type: ignore[union-attr]
    assert src == "/monitors/cancer-drift/report?run=4"
    report = vera.get(src)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.headers["content-security-policy"].startswith("sandbox allow-scripts")
    assert "monitor cancer-drift, run 4" in report.text
    assert SCRIPT.format("alert") not in report.text
