"""The web UI's sign-in, runs table, run page, artifacts and comparison, over a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from loopline.core.entities import Metric
from loopline.server.options import ServerOptions
from loopline.wiring.backends import Backends, local_owner
from tests.integration.api_helpers import Team, running_api, sqlite_team
from tests.integration.ui_helpers import csrf_of, signed_in

PAYLOAD = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with sqlite_team(tmp_path_factory.mktemp("ui")) as running:
        yield running


@pytest.fixture(scope="module")
def ranked(team: Team) -> dict[str, str]:
    """Five runs of experiment `ranked` with auc 0.1..0.5, one a child of the first."""
    tracking = team.backends.services(local_owner()).tracking
    ids: dict[str, str] = {}
    for i, auc in enumerate([0.3, 0.1, 0.5, 0.2, 0.4]):
        parent = ids.get("run-0")
        run = tracking.start_run("ranked", run_name=f"run-{i}", parent_id=parent if i == 4 else None)
        tracking.log_batch(run.id, [Metric("auc", auc, 0, 1)], params={"depth": str(i)}, tags={"team": "a"})
        ids[f"run-{i}"] = run.id
    return ids


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr tabindex="0" data-href="/runs/([0-9a-f]+)"', page)


def test_a_signed_out_browser_sees_only_the_sign_in_page(team: Team) -> None:
    with httpx.Client(base_url=team.url) as browser:
        for path in ("/", "/experiments", "/runs", f"/runs/{team.ids['run_id']}", "/models", "/audit"):
            answer = browser.get(path, follow_redirects=True)
            assert answer.url.path == "/login", path
            assert 'id="sign-in"' in answer.text
            assert "cancer" not in answer.text and "<table" not in answer.text  # nothing of the store
        assert browser.get("/api/v1/experiments").status_code == 401


def test_signing_in_sets_a_strict_http_only_cookie_and_never_shows_the_token(team: Team) -> None:
    with httpx.Client(base_url=team.url) as browser:
        assert browser.post("/api/v1/session", json={"token": "ll_wrong"}).status_code == 401
        answer = browser.post("/api/v1/session", json={"token": team.tokens["vera"]})
        assert answer.status_code == 204
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        session = browser.cookies["loopline_session"]
        page = browser.get("/experiments").text
        assert team.tokens["vera"] not in page and session not in page
        assert "vera" in page


def test_signing_out_revokes_the_session(team: Team) -> None:
    browser = signed_in(team, "vera")
    csrf = csrf_of(browser.get("/experiments").text)
    stolen = browser.cookies["loopline_session"]
    assert browser.delete("/api/v1/session", headers={"x-csrf-token": csrf}).status_code == 204
    replayed = httpx.get(f"{team.url}/api/v1/whoami", cookies={"loopline_session": stolen})
    assert replayed.status_code == 401


def test_every_page_has_a_policy_that_forbids_inline_script(team: Team) -> None:
    browser = signed_in(team, "admin")
    for path in ("/experiments", f"/runs/{team.ids['run_id']}", "/login"):
        policy = browser.get(path).headers["content-security-policy"]
        assert (
            "script-src 'self'" in policy
            and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        )
        assert "frame-ancestors 'none'" in policy


def test_the_runs_table_is_sorted_and_paged_by_the_server(team: Team, ranked: dict[str, str]) -> None:
    browser = signed_in(team, "vera")
    experiment = team.backends.services(local_owner()).tracking.get_experiment("ranked").id
    base = f"/runs?experiment={experiment}&column=metric:auc&column=param:depth"
    by_auc = _rows(browser.get(f"{base}&order=metrics.auc+DESC&size=10").text)
    names = {v: k for k, v in ranked.items()}
    # the child run-4 is listed under its parent run-0, wherever auc would put it
    assert [names[r] for r in by_auc] == ["run-2", "run-0", "run-4", "run-3", "run-1"]
    first = browser.get(f"{base}&order=metrics.auc+ASC&size=10").text
    assert [names[r] for r in _rows(first)][:2] == ["run-1", "run-3"]
    assert 'aria-sort="ascending"' in first


def test_keyset_pages_cover_every_run_once(team: Team, ranked: dict[str, str]) -> None:
    browser = signed_in(team, "vera")
    experiment = team.backends.services(local_owner()).tracking.get_experiment("ranked").id
    url: str | None = f"/runs?experiment={experiment}&order=metrics.auc+ASC&size=10"
    seen: list[str] = []
    tracking = team.backends.services(local_owner()).tracking
    for _ in range(20):  # more runs than one page
        tracking.start_run("paged")
    paged = tracking.get_experiment("paged").id
    url = f"/runs?experiment={paged}&size=10"
    while url:
        page = browser.get(url).text
        seen += _rows(page)
        found = re.search(r'id="next-page" href="([^"]+)"', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == 20 == len(set(seen))


def test_a_bad_page_address_is_an_error_page_not_json(team: Team) -> None:
    answer = signed_in(team, "vera").get("/runs", params={"size": "3"})
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
    assert "size" in answer.text and "content-security-policy" in answer.headers


def test_a_filter_error_is_shown_at_its_column(team: Team) -> None:
    browser = signed_in(team, "vera")
    page = browser.get("/runs", params={"filter": "metrics.auc >"}).text
    assert 'id="filter-error"' in page and "at column 14" in page


def test_a_viewer_is_offered_no_action_and_a_forged_one_is_refused(team: Team) -> None:
    viewer, editor = signed_in(team, "vera"), signed_in(team, "alice")
    run_id = team.backends.services(local_owner()).tracking.start_run("exp").id
    experiment = team.ids["experiment_id"]
    assert "Delete selected" not in viewer.get(f"/runs?experiment={experiment}").text
    editor_page = editor.get(f"/runs?experiment={experiment}").text
    assert "Delete selected" in editor_page
    csrf = csrf_of(viewer.get(f"/runs?experiment={experiment}").text)
    assert viewer.delete(f"/api/v1/runs/{run_id}", headers={"x-csrf-token": csrf}).status_code == 403
    assert editor.delete(f"/api/v1/runs/{run_id}").status_code == 403  # the cookie alone: no CSRF header
    assert editor.delete(f"/api/v1/runs/{run_id}", headers={"x-csrf-token": csrf}).status_code == 403
    assert (
        editor.delete(f"/api/v1/runs/{run_id}", headers={"x-csrf-token": csrf_of(editor_page)}).status_code
        == 204
    )


def test_user_strings_are_shown_as_text(team: Team) -> None:
    tracking = team.backends.services(local_owner()).tracking
    run = tracking.start_run(PAYLOAD, run_name=PAYLOAD)
    tracking.log_batch(run.id, [Metric("m", 1.0, 0, 1)], params={"p": PAYLOAD}, tags={"t": PAYLOAD})
    tracking.log_artifact_bytes(run.id, f"{PAYLOAD}.txt", PAYLOAD.encode())
    browser = signed_in(team, "admin")
    experiment = tracking.get_experiment(PAYLOAD).id
    pages = [
        browser.get("/experiments").text,
        browser.get(f"/runs?experiment={experiment}&column=tag:t&column=param:p").text,
        browser.get(f"/runs/{run.id}").text,
        browser.get(f"/runs/{run.id}/artifacts", params={"name": f"{PAYLOAD}.txt"}).text,
    ]
    for page in pages:
        assert PAYLOAD not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_run_page_shows_what_the_store_holds(team: Team) -> None:
    browser = signed_in(team, "vera")
    run = team.backends.services(local_owner()).tracking.get_run(team.ids["run_id"])
    page = browser.get(f"/runs/{run.id}").text
    params = dict(
        re.findall(
            r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", page.split('id="params"')[1].split("</table>")[0]
        )
    )
    assert params == run.params
    charts = re.findall(r'class="chart" data-runs="([0-9a-f]+)" data-key="([^"]+)"', page)
    assert charts == [(run.id, key) for key in sorted(run.metrics)]
    assert "notes/" in page  # the artifact folder


def test_html_artifacts_are_framed_in_a_sandbox(team: Team) -> None:
    tracking = team.backends.services(local_owner()).tracking
    run_id = team.ids["run_id"]
    tracking.log_artifact_bytes(run_id, "report.html", b"<script>parent.document.title='owned'</script>")
    browser = signed_in(team, "vera")
    page = browser.get(f"/runs/{run_id}/artifacts", params={"name": "report.html"}).text
    assert '<iframe class="artifact" sandbox="allow-scripts"' in page
    framed = browser.get(f"/runs/{run_id}/artifact-frame", params={"name": "report.html"})
    assert framed.headers["content-security-policy"].startswith("sandbox allow-scripts")
    assert "allow-same-origin" not in framed.headers["content-security-policy"]
    refused = browser.get(f"/runs/{run_id}/artifact-frame", params={"name": "notes/a.txt"})
    assert refused.status_code == 400 and "download it" in refused.text


def test_comparing_marks_the_params_that_differ(team: Team, ranked: dict[str, str]) -> None:
    browser = signed_in(team, "vera")
    page = browser.get("/compare", params={"run": [ranked["run-1"], ranked["run-2"]]}).text
    assert re.search(r'<tr class="differs"><th>params\.depth</th>', page)
    assert "<tr><th>params." not in page or "params.depth" in page
    assert 'id="parallel"' in page and 'data-runs="' in page


def test_embedded_mode_answers_only_loopback_names_and_wants_the_csrf_header(team: Team) -> None:
    backends = Backends(team.backends.store, team.backends.blobs)
    with running_api(backends, ServerOptions(embedded=local_owner())) as url:
        port = url.rsplit(":", 1)[1]
        assert httpx.get(f"{url}/experiments").status_code == 200  # no sign-in
        rebound = httpx.get(f"{url}/experiments", headers={"host": f"evil.example:{port}"})
        assert rebound.status_code == 421
        run_id = backends.services(local_owner()).tracking.start_run("exp").id
        assert httpx.delete(f"{url}/api/v1/runs/{run_id}").status_code == 403
        csrf = csrf_of(httpx.get(f"{url}/experiments").text)
        assert httpx.delete(f"{url}/api/v1/runs/{run_id}", headers={"x-csrf-token": csrf}).status_code == 204
