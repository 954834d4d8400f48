"""The CLI pointed at a server (`--uri`): deployments, monitors, automation, pipelines,
users, tokens, members and the audit trail work as they do on a local store, as the
token's owner, with the server's role checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import loopline as ll
from loopline import _sdk
from loopline.artifacts import BlobStore
from loopline.cli.main import run
from loopline.core.traffic import TrafficPolicy
from loopline.store import MetadataStore
from loopline.wiring.backends import local_owner
from tests.integration.api_helpers import Team, team_server
from tests.integration.serving_helpers import cancer_data

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def team(store: MetadataStore, blobs: BlobStore) -> Iterator[Team]:
    with team_server(store, blobs) as started:
        yield started


@pytest.fixture
def cli(team: Team, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run `loopline --uri URL ARGS` as `user`: (exit code, stdout, stderr)."""

    def invoke(*args: str, user: str = "admin") -> tuple[int, str, str]:
        monkeypatch.setenv("LOOPLINE_TOKEN", team.tokens[user])
        code = run(["--uri", team.url, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def _json(result: tuple[int, str, str]) -> Any:
    code, out, err = result
    assert code == 0, err
    return json.loads(out)


def test_users_tokens_and_members_through_the_server(cli: Cli, team: Team) -> None:
    assert cli("users", "create", "newcomer")[0] == 0
    assert "newcomer" in [u["name"] for u in _json(cli("users", "list", "--json"))]
    code, out, _ = cli("tokens", "create", "newcomer", "--name", "laptop")
    assert code == 0
    secret = next(word for word in out.split() if word.startswith("ll_"))
    assert team.backends.services(local_owner()).access.authenticate(secret).name == "newcomer"
    assert [t["name"] for t in _json(cli("tokens", "list", "newcomer", "--json"))] == ["laptop"]

    assert cli("members", "set", "default", "newcomer", "viewer", user="olga")[0] == 0
    members = dict((m["user"], m["role"]) for m in _json(cli("members", "list", "default", "--json")))
    assert members["newcomer"] == "viewer"
    assert cli("members", "remove", "default", "newcomer", user="olga")[0] == 0
    assert "newcomer" not in dict(team.backends.store.access.members("default"))

    code, _, err = cli("users", "list", user="olga")  # an owner, not an administrator
    assert code == 1 and "only an administrator may list users" in err


def test_the_audit_trail_through_the_server(cli: Cli) -> None:
    assert cli("members", "set", "default", "vera", "editor", user="olga")[0] == 0
    entries = _json(cli("audit", "list", "--action", "member.role", "--json"))
    assert entries[0]["actor"] == "olga" and entries[0]["target"] == "project:default/vera"
    assert entries[0]["before"] == "viewer" and entries[0]["after"] == "editor"
    code, out, _ = cli("audit", "verify")
    assert code == 0 and "audit trail intact" in out
    head = out.split()[-1]
    code, out, _ = cli("audit", "verify", "--anchor", head)
    assert code == 0 and out.split()[-1] == head
    code, out, _ = cli("audit", "verify", "--anchor", "f" * 64)  # a head this trail never had
    assert code == 1 and "no entry has the anchor's hash" in out
    code, _, err = cli("audit", "list", user="olga")
    assert code == 1 and "only an administrator may read the audit trail" in err


def test_deployments_through_the_server(cli: Cli, team: Team, tmp_path: Path) -> None:
    assert [d["name"] for d in _json(cli("deployments", "list", "--json"))] == ["cancer-prod"]
    shown = _json(cli("deployments", "show", "cancer-prod", "--json"))
    assert shown["serving"] == {"main": "models:/cancer/1"}  # champion resolved by the server

    v2 = ("--model", "models:/cancer/2")
    code, _, err = cli("deployments", "set-traffic", "cancer-prod", *v2, user="vera")
    assert code == 1 and "needs maintainer" in err
    changed = cli(
        "deployments", "set-traffic", "cancer-prod", "--model", "models:/cancer/2",
        "--canary", "models:/cancer/1", "--percent", "25", "--reason", "try v2", user="maya",
    )  # fmt: skip
    assert changed[0] == 0, changed[2]
    service = team.backends.services(local_owner()).deployments
    assert service.policy("cancer-prod").describe() == (
        TrafficPolicy.canary("models:/cancer/2", "models:/cancer/1", 25.0).describe()
    )
    assert service.revisions("cancer-prod")[-1].actor == "maya"
    assert cli("deployments", "rollback", "cancer-prod", "--reason", "v2 is worse", user="maya")[0] == 0
    assert service.policy("cancer-prod") == TrafficPolicy.single("models:/cancer@champion")

    assert cli("deployments", "create", "cancer-v2", "--model", "models:/cancer/2", user="maya")[0] == 0
    assert cli("deployments", "export", "cancer-v2", "--to", str(tmp_path / "k8s"), user="vera")[0] == 0
    assert (tmp_path / "k8s" / "Dockerfile").exists()
    assert cli("deployments", "delete", "cancer-v2", user="maya")[0] == 0
    assert [d.name for d in service.list_all()] == ["cancer-prod"]

    report = _json(cli("deployments", "report", "cancer-prod", "--json", user="vera"))  # the server's logs
    assert report["deployment"] == "cancer-prod" and [a["requests"] for a in report["arms"]] == [0]


def test_monitors_through_the_server(cli: Cli, team: Team, tmp_path: Path) -> None:
    listed = _json(cli("monitor", "list", "--json"))
    assert [(m["monitor"]["name"], m["firing"]) for m in listed] == [("cancer-watch", 0)]
    code, _, err = cli("monitor", "run", "cancer-watch", user="vera")
    assert code == 1 and "needs maintainer" in err
    outcome = _json(cli("monitor", "run", "cancer-watch", "--json", user="maya"))
    assert outcome["run"]["monitor"] == "cancer-watch" and outcome["run"]["rows"] == 0
    runs = team.backends.services(local_owner()).monitors.runs("cancer-watch")
    assert runs[0].id == outcome["run"]["id"] and runs[0].rows == 0

    code, out, _ = cli("monitor", "show", "cancer-watch", user="vera")
    assert code == 0 and "cancer-prod" in out
    code, out, _ = cli("monitor", "forecast", "cancer-watch", "rows", "--below", "10", user="vera")
    assert code == 0 and "too few runs for a trend" in out
    report = tmp_path / "report.html"
    assert (
        cli("monitor", "report", "cancer-watch", "--output", str(report), "--plotly", "cdn", user="vera")[0]
        == 0
    )
    html = report.read_text()
    assert f"<title>monitor cancer-watch, run {outcome['run']['id']}</title>" in html  # the newest run
    assert _json(cli("monitor", "alerts", "--json", user="vera")) == []

    create = ("monitor", "create", "other", "--deployment", "cancer-prod", "--reference", "patients")
    code, _, err = cli(*create, user="vera")
    assert code == 1 and "needs maintainer" in err
    assert cli(*create, "--target", "target", user="maya")[0] == 0  # the server scores the reference
    created = team.backends.services(local_owner()).monitors.get("other")
    assert (created.deployment, created.created_by) == ("cancer-prod", "maya")


def test_schedules_triggers_jobs_and_pipelines_through_the_server(cli: Cli, team: Team) -> None:
    assert [s["name"] for s in _json(cli("schedules", "list", "--json", user="vera"))] == ["nightly"]
    assert [t["name"] for t in _json(cli("triggers", "list", "--json", user="vera"))] == ["on-alert"]
    code, _, err = cli("schedules", "create", "hourly", "--cron", "0 * * * *", "--monitor", "cancer-watch",
                       user="vera")  # fmt: skip
    assert code == 1 and "needs maintainer" in err
    assert cli("schedules", "create", "hourly", "--cron", "0 * * * *", "--monitor", "cancer-watch",
               user="maya")[0] == 0  # fmt: skip
    assert cli("triggers", "delete", "on-alert", user="maya")[0] == 0
    automation = team.backends.services(local_owner()).automation
    assert [s.name for s in automation.schedules()] == ["hourly", "nightly"]
    assert automation.schedules()[0].created_by == "maya" and automation.triggers() == []

    assert cli("jobs", "enqueue", "--monitor", "cancer-watch", user="maya")[0] == 0
    jobs = _json(cli("jobs", "list", "--json", user="vera"))
    assert [(j["kind"], j["target"], j["status"]) for j in jobs] == [("monitor", "cancer-watch", "queued")]

    runs = _json(cli("pipelines", "list", "--json", user="vera"))
    assert [r["pipeline"] for r in runs] == ["flows:nightly"]
    assert _json(cli("pipelines", "show", runs[0]["id"], "--json", user="vera"))["id"] == runs[0]["id"]
    code, _, err = cli("pipelines", "list", user="mallory")  # no role on the registry project
    assert code == 1 and "does not exist" in err


def test_datasets_through_the_server(cli: Cli, team: Team, tmp_path: Path) -> None:
    features, target = cancer_data()
    changed = features.assign(target=target).head(300)
    changed["mean radius"] = changed["mean radius"] * 1.5
    csv = tmp_path / "patients.csv"
    changed.to_csv(csv, index=False)

    code, _, err = cli("datasets", "register", "patients", str(csv), user="vera")
    assert code == 1 and "vera is not editor on any project" in err  # refused at the upload
    registered = _json(cli("datasets", "register", "patients", str(csv), "--json", user="alice"))
    assert registered["created"] and registered["dataset"]["version"] == 2
    stored = team.backends.services(local_owner()).datasets.get(
        "patients"
    )  # profiled and stored by the server
    assert (stored.version, stored.rows, stored.created_by) == (2, 300, "alice")
    again = _json(cli("datasets", "register", "patients", str(csv), "--json", user="alice"))
    assert not again["created"] and again["dataset"]["version"] == 2  # the same rows: the same version

    versions = _json(cli("datasets", "versions", "patients", "--json", user="vera"))
    assert [v["version"] for v in versions] == [1, 2]
    diff = _json(cli("datasets", "diff", "patients@1", "patients@2", "--json", user="vera"))
    assert diff["rows"] == [len(features), 300]
    assert "mean radius" in [c["column"] for c in diff["changes"]]

    ll.configure(uri=team.url, token=team.tokens["vera"])
    try:
        remote = ll.datasets.get("patients")
        assert remote.to_pandas().equals(
            team.backends.services(local_owner()).datasets.read(stored).to_pandas()
        )
        assert remote.profile().rows == 300
    finally:
        _sdk.reset()
