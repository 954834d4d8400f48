"""The web UI's registry pages (models, a model, a version) over a real server: what they
show is what the store holds, decisions are offered by role and need the CSRF header."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx
import pytest

from loopline.core.errors import ApprovalRequired
from loopline.ui.rendering import number
from loopline.wiring.local import LocalServices
from tests.integration.api_helpers import Team, sqlite_team
from tests.integration.serving_helpers import cancer_data
from tests.integration.ui_helpers import csrf_of, signed_in

PAYLOAD = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """The usual world on SQLite, plus: a model whose description is a script, the evaluation
    data registered as dataset `held-out`, cancer v2 evaluated in slices on data named by a
    script, and promoted to @challenger (a gate report)."""
    with sqlite_team(tmp_path_factory.mktemp("ui-models")) as running:
        owner = _owner(running)
        owner.registry.create_model("xss", description=PAYLOAD)
        owner.registry.update_version("cancer", 2, description=PAYLOAD)
        features, target = cancer_data()
        owner.datasets.register("held-out", features.assign(target=target).head(200))
        sliced = features.assign(target=target).tail(200)
        owner.promotion.evaluate(
            "models:/cancer/2", sliced, "target", slices=["mean radius"], dataset_name=PAYLOAD
        )
        owner.promotion.promote("cancer", 2, "challenger")
        yield running


def _owner(team: Team) -> LocalServices:
    return team.backends.services(team.backends_owner)


# a small reading of the pages ------------------------------------------------------------


@dataclass(eq=False)
class Element:
    tag: str
    attrs: dict[str, str]
    within: list[Element]  # every enclosing element, outermost first
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


class Page(HTMLParser):
    """A page read into its elements, to find them by tag, attributes and what holds them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, list(self._open))
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)

    def find(self, tag: str, inside: str | Element | None = None, **attrs: str) -> list[Element]:
        """The `tag` elements with `attrs` (data_x for data-x), within `inside` (an element,
        or the id of one)."""
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [
            e
            for e in self.elements
            if e.tag == tag
            and all(e.attrs.get(k) == v for k, v in wanted.items())
            and (inside is None or any(p is inside or p.attrs.get("id") == inside for p in e.within))
        ]

    def one(self, tag: str, inside: str | Element | None = None, **attrs: str) -> Element:
        found = self.find(tag, inside, **attrs)
        assert len(found) == 1, (tag, inside, attrs, len(found))
        return found[0]

    def cells(self, row: Element) -> list[str]:
        """The text of each cell of `row`."""
        return [c.text for c in self.elements if c.tag in ("td", "th") and c.within[-1:] == [row]]

    def rows(self, table: str) -> list[Element]:
        """The rows of the table of id `table` that stand for something (data-* attributes)."""
        return [r for r in self.find("tr", inside=table) if any(k.startswith("data-") for k in r.attrs)]

    def decisions(self) -> list[str]:
        """The URLs of the Approve and Reject buttons."""
        return [
            b.attrs["data-url"]
            for b in self.find("button")
            if "/alias-requests/" in b.attrs.get("data-url", "")
        ]

    def alias_moves(self) -> list[Element]:
        return [b for b in self.find("button") if b.attrs.get("data-method") == "PUT"]


def page_of(browser: httpx.Client, path: str) -> Page:
    """A page as the browser gets it: 200, with the CSP, and no inline script or handler."""
    answer = browser.get(path)
    assert answer.status_code == 200, answer.text
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    page = Page(answer.text)
    assert all(s.attrs.get("src") for s in page.find("script")), "an inline <script>"
    assert not any(k.startswith("on") for e in page.elements for k in e.attrs), "an on* handler attribute"
    return page


# the list of models ------------------------------------------------------------------------


def test_the_models_page_lists_every_model_the_store_holds_with_its_versions_and_aliases(team: Team) -> None:
    page = page_of(signed_in(team, "admin"), "/models")
    expected = _owner(team).registry.list_models()
    shown = {r.attrs["data-model"]: r for r in page.rows("models")}
    assert sorted(shown) == sorted(m.name for m in expected)
    for model in expected:
        row = shown[model.name]
        latest = [td for td in page.find("td", inside=row) if "latest" in td.attrs.get("class", "")]
        assert [td.text for td in latest] == [str(model.latest_version or "")]
        pills = [p for p in page.find("span", inside=row) if "data-alias" in p.attrs]
        assert {p.attrs["data-alias"]: int(p.attrs["data-version"]) for p in pills} == model.aliases
        assert page.find("a", inside=row)[0].attrs["href"] == f"/models/{model.name}"
    assert "@champion → v1" in shown["cancer"].text


def test_a_viewer_sees_the_models_of_her_projects_only(team: Team) -> None:
    names = {r.attrs["data-model"] for r in page_of(signed_in(team, "vera"), "/models").rows("models")}
    assert "cancer" in names and "secret-model" not in names
    everything = page_of(signed_in(team, "admin"), "/models").rows("models")
    assert "secret-model" in {r.attrs["data-model"] for r in everything}
    assert signed_in(team, "vera").get("/models/secret-model").status_code == 404
    assert signed_in(team, "mallory").get("/models/cancer").status_code == 404


def test_user_text_is_shown_escaped_never_as_markup(team: Team) -> None:
    browser = signed_in(team, "vera")
    for path in ("/models", "/models/xss", "/models/cancer/versions/2"):
        page = page_of(browser, path)
        assert ESCAPED in page.html and PAYLOAD not in page.html, path
    shown = page_of(browser, "/models").one("tr", inside="models", data_model="xss")
    assert PAYLOAD in shown.text  # read back as the text it is
    assert PAYLOAD in page_of(browser, "/models/cancer/versions/2").one("pre", id="model-card").text


# one model ----------------------------------------------------------------------------------


def _versions(text: str) -> tuple[int | None, ...]:
    return tuple(int(v) if v else None for v in text.split(","))


def test_the_model_page_shows_the_versions_aliases_history_and_requests_of_the_store(team: Team) -> None:
    registry = _owner(team).registry
    page = page_of(signed_in(team, "vera"), "/models/cancer")
    stored = registry.list_versions("cancer")
    assert [int(r.attrs["data-version"]) for r in page.rows("versions")] == [v.version for v in stored]
    for version in stored:
        row = page.one("tr", inside="versions", data_version=str(version.version))
        assert (version.digest or "")[:12] in row.text and version.status.value in row.text
    model = registry.get_model("cancer")
    aliases = {r.attrs["data-alias"]: int(page.cells(r)[1]) for r in page.rows("aliases")}
    assert aliases == model.aliases
    history = [
        (r.attrs["data-alias"], _versions(f"{r.attrs['data-from']},{r.attrs['data-to']}"))
        for r in page.rows("alias-history")
    ]
    moves = registry.alias_history("cancer")
    assert history == [(e.alias, (e.from_version, e.to_version)) for e in reversed(moves)]
    assert ("champion", (None, 1)) in history and ("challenger", (None, 2)) in history
    pending = {int(r.attrs["data-request"]) for r in page.rows("pending-requests")}
    assert pending == {r.id for r in registry.alias_requests("cancer", status="pending")}
    assert int(team.ids["request_id"]) in pending
    decided = {int(r.attrs["data-request"]) for r in page.rows("decided-requests")}
    assert decided == {r.id for r in registry.alias_requests("cancer") if r.status != "pending"}


def test_approve_reject_and_set_alias_are_offered_to_maintainers_only(team: Team) -> None:
    request_id = team.ids["request_id"]
    for user in ("vera", "alice"):
        page = page_of(signed_in(team, user), "/models/cancer")
        assert page.decisions() == [] and page.alias_moves() == [], user
        assert page_of(signed_in(team, user), "/models/cancer/versions/2").alias_moves() == [], user
    for user in ("maya", "olga", "admin"):
        page = page_of(signed_in(team, user), "/models/cancer")
        decisions = page.decisions()
        assert f"/api/v1/alias-requests/{request_id}/approve" in decisions, user
        assert f"/api/v1/alias-requests/{request_id}/reject" in decisions, user
        approve = page.one("button", data_url=f"/api/v1/alias-requests/{request_id}/approve")
        assert "data-reason" in approve.attrs and json.loads(approve.attrs["data-body"]) == {"reason": ""}
        champion = [
            b for b in page.alias_moves() if b.attrs["data-url"] == "/api/v1/models/cancer/aliases/champion"
        ]
        champion_on = _owner(team).registry.get_model("cancer").aliases["champion"]
        assert [json.loads(b.attrs["data-body"]) for b in champion] == [
            {"version": v.version}
            for v in _owner(team).registry.list_versions("cancer")
            if v.version != champion_on
        ]


def _request(team: Team, version: int, by: LocalServices | None = None) -> int:
    """A fresh request to move the protected @gold of cancer to `version`."""
    try:
        (by or _owner(team)).registry.set_alias("cancer", "gold", version, reason="for the UI test")
    except ApprovalRequired as waiting:
        return int(waiting.request_id)
    raise AssertionError("@gold is not protected")


def _status(team: Team, request_id: int) -> str:
    return next(r.status for r in _owner(team).registry.alias_requests("cancer") if r.id == request_id)


def test_an_approval_needs_the_pages_csrf_header_and_a_maintainer(team: Team) -> None:
    request_id = _request(team, 1)
    url = f"/api/v1/alias-requests/{request_id}/approve"
    maya, vera = signed_in(team, "maya"), signed_in(team, "vera")
    assert maya.post(url, json={"reason": "looks good"}).status_code == 403  # the cookie alone
    assert maya.post(url, json={"reason": "x"}, headers={"x-csrf-token": "0" * 64}).status_code == 403
    vera_csrf = csrf_of(page_of(vera, "/models/cancer").html)
    assert vera.post(url, json={"reason": "x"}, headers={"x-csrf-token": vera_csrf}).status_code == 403
    assert _status(team, request_id) == "pending"

    page = page_of(maya, "/models/cancer")
    assert url in page.decisions()
    answer = maya.post(url, json={"reason": "looks good"}, headers={"x-csrf-token": csrf_of(page.html)})
    assert answer.status_code == 200, answer.text
    assert _status(team, request_id) == "approved"
    assert _owner(team).registry.get_model("cancer").aliases["gold"] == 1

    after = page_of(maya, "/models/cancer")
    assert url not in after.decisions()
    decided = after.one("tr", inside="decided-requests", data_request=str(request_id))
    assert "approved" in decided.text and "maya" in decided.text and "looks good" in decided.text
    newest = after.rows("alias-history")[0]
    assert (newest.attrs["data-alias"], newest.attrs["data-to"]) == ("gold", "1") and "maya" in newest.text


def test_a_rejection_is_recorded_and_ones_own_request_is_left_to_a_second_person(team: Team) -> None:
    maya_principal = _owner(team).access.authenticate(team.tokens["maya"])
    own = _request(team, 2, by=team.backends.services(maya_principal))
    maya = signed_in(team, "maya")
    page = page_of(maya, "/models/cancer")
    assert f"/api/v1/alias-requests/{own}/approve" not in page.decisions()
    assert "your request" in page.one("tr", inside="pending-requests", data_request=str(own)).text
    olga = signed_in(team, "olga")
    olga_page = page_of(olga, "/models/cancer")
    assert f"/api/v1/alias-requests/{own}/reject" in olga_page.decisions()
    answer = olga.post(
        f"/api/v1/alias-requests/{own}/reject",
        json={"reason": "not now"},
        headers={"x-csrf-token": csrf_of(olga_page.html)},
    )
    assert answer.status_code == 200, answer.text
    assert _status(team, own) == "rejected"
    row = page_of(maya, "/models/cancer").one("tr", inside="decided-requests", data_request=str(own))
    assert "rejected" in row.text and "olga" in row.text and "not now" in row.text


# one version --------------------------------------------------------------------------------


def test_the_version_page_shows_signature_files_and_source_run_as_stored(team: Team) -> None:
    mv = _owner(team).registry.get_version("cancer", 1)
    page = page_of(signed_in(team, "vera"), "/models/cancer/versions/1")
    files = {r.attrs["data-path"]: r for r in page.rows("files")}
    assert sorted(files) == sorted(mv.files)
    for path, (digest, size) in mv.files.items():
        assert page.one("code", inside=files[path]).text == digest
        assert f"{size:,}" in files[path].text
    assert page.one("code", id="version-digest").text == mv.digest
    columns = mv.model_json["signature"]["inputs"]["columns"]
    shown = [page.cells(r)[:2] for r in page.find("tr", inside="signature-inputs")[1:]]
    assert shown == [[c["name"], c["type"]] for c in columns]
    assert page.one("a", inside="source-run").attrs["href"] == f"/runs/{mv.run_id}"


def test_the_version_page_shows_evaluations_gate_reports_and_the_model_card(team: Team) -> None:
    owner = _owner(team)
    browser = signed_in(team, "vera")
    page = page_of(browser, "/models/cancer/versions/1")
    [evaluation] = owner.promotion.evaluations("cancer", 1)
    assert str(evaluation.id) == team.ids["evaluation_id"]
    card = page.one("div", id=f"evaluation-{evaluation.id}")
    metrics = [page.cells(r) for r in page.find("tr", inside=card)]
    for metric, value in evaluation.metrics.items():
        assert [metric, f"{value:.6g}"] in metrics
    plots = [i.attrs["src"] for i in page.find("img", inside=card)]
    base = f"/api/v1/models/cancer/versions/1/evaluations/{evaluation.id}/plots"
    assert sorted(plots) == sorted(f"{base}/{name}" for name in evaluation.artifacts)
    if plots:
        assert browser.get(plots[0]).headers["content-type"] == "image/png"
    markdown = owner.promotion.model_card("cancer", 1)
    assert page.one("pre", id="model-card").text == " ".join(markdown.split())
    assert page.find("p", id="no-gate-reports")

    second = page_of(browser, "/models/cancer/versions/2")
    [event] = [e for e in owner.registry.alias_history("cancer") if e.alias == "challenger"]
    assert event.report is not None and not event.forced
    [report] = [d for d in second.find("div") if "gate-report" in d.attrs.get("class", "")]
    assert "@challenger" in report.text and "passed" in report.text
    gates = [second.cells(r) for r in second.find("tr", inside=report)[1:]]
    expected = [[g["gate"], "pass" if g["passed"] else "FAIL", g["message"]] for g in event.report["gates"]]
    assert gates == expected


def test_an_evaluation_shows_its_slices(team: Team) -> None:
    [evaluation] = _owner(team).promotion.evaluations("cancer", 2)
    page = page_of(signed_in(team, "vera"), "/models/cancer/versions/2")
    card = page.one("div", id=f"evaluation-{evaluation.id}")
    assert PAYLOAD in page.one("h3", inside=card).text  # the data's name, as text
    table = page.one("table", inside=card, data_column="mean radius")
    [header, *body] = [page.cells(r) for r in page.find("tr", inside=table)]
    slices = evaluation.slices["mean radius"]
    keys = sorted({k for values in slices.values() for k in values} - {"count"})
    assert header == ["mean radius", "rows", *keys]
    assert body == [
        [label, number(values["count"]), *(number(values.get(k)) for k in keys)]
        for label, values in sorted(slices.items())
    ]


def test_the_lineage_of_a_version_is_drawn_and_listed_with_links(team: Team) -> None:
    owner = _owner(team)
    mv = owner.registry.get_version("cancer", 1)
    assert mv.digest is not None
    graph = owner.lineage.graph(("model_version", mv.digest))
    page = page_of(signed_in(team, "vera"), "/models/cancer/versions/1")
    listed = {(r.attrs["data-kind"], r.attrs["data-key"]) for r in page.rows("lineage-nodes")}
    assert listed == set(graph.nodes)
    links = {a.attrs["href"] for a in page.find("a", inside="lineage-nodes")}
    assert {f"/runs/{mv.run_id}", "/deployments/cancer-prod", "/datasets/held-out"} <= links
    assert "/models/cancer/versions/1" in links

    figure = json.loads(page.one("div", id="lineage-graph").attrs["data-figure"])
    names = {t.get("name") for t in figure["data"]}
    assert {"dataset", "run", "model version", "deployment"} <= names
    assert len(figure["data"][0]["x"]) == 3 * len(graph.edges)  # a segment and a gap per edge
    assert sum(len(t["x"]) for t in figure["data"][1:]) == len(graph.nodes)


def test_the_lineage_figure_shows_names_as_typed_not_as_plotly_markup(team: Team) -> None:
    page = page_of(signed_in(team, "vera"), "/models/cancer/versions/2")
    figure = json.loads(page.one("div", id="lineage-graph").attrs["data-figure"])
    [datasets] = [t for t in figure["data"] if t.get("name") == "dataset"]
    assert html.escape(PAYLOAD) in datasets["text"]  # plotly shows entities as the characters
    assert not [t for trace in figure["data"] for t in trace.get("text", []) if "<" in t]


def test_a_model_or_version_that_does_not_exist_is_a_404_page(team: Team) -> None:
    browser = signed_in(team, "vera")
    for path in ("/models/nope", "/models/cancer/versions/99"):
        answer = browser.get(path)
        assert answer.status_code == 404 and "text/html" in answer.headers["content-type"], path


def test_a_protected_alias_is_offered_as_a_request(team: Team) -> None:
    page = signed_in(team, "maya").get("/models/cancer").text
    assert "Request @gold here" in page and 'data-reload-on="409"' in page
    assert "Request @champion here" not in page and "@champion here" in page
