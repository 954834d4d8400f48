"""The command line, in-process through its real entry point, on real stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopline.artifacts import BlobStore
from loopline.core.entities import Metric, RunStatus
from loopline.store import open_metadata_store
from loopline.store.migrate import HEAD_REVISION
from loopline.tracking.service import TrackingService
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import Invoke


@pytest.fixture
def filled(store_url: str, tmp_path: Path) -> TrackingService:
    service = (
        Backends(open_metadata_store(store_url), BlobStore(str(tmp_path / "artifacts")))
        .services(local_owner())
        .tracking
    )
    for i, (model, auc) in enumerate([("rf", 0.91), ("gbm", 0.95), ("rf", 0.7)]):
        r = service.start_run("churn", run_name=f"run-{i}")
        service.log_batch(r.id, [Metric("auc", auc, 0, 1)], params={"model": model})
        service.log_artifact_bytes(r.id, "notes.txt", b"hello")
        service.end_run(r.id, RunStatus.FINISHED)
    return service


def test_experiments_create_and_list(cli: Invoke) -> None:
    code, out, _ = cli("experiments", "create", "churn", "--description", "who leaves")
    assert code == 0 and "created experiment 'churn'" in out
    code, out, _ = cli("experiments", "list", "--json")
    assert code == 0
    assert [(e["name"], e["description"]) for e in json.loads(out)] == [("churn", "who leaves")]
    code, out, _ = cli("experiments", "list")
    assert "churn" in out and "who leaves" in out
    long = "customers who leave within ninety days of their first invoice, by region"
    cli("experiments", "create", "long", "--description", long)
    assert long in cli("experiments", "list")[1]  # written to a pipe: never cut to 80 columns


@pytest.mark.usefixtures("filled")
def test_runs_list_filters_and_orders(cli: Invoke) -> None:
    code, out, _ = cli(
        "runs", "list", "-e", "churn", "-f", "params.model = 'rf'", "-o", "metrics.auc DESC", "--json"
    )
    assert code == 0
    listed = json.loads(out)
    assert [r["name"] for r in listed["runs"]] == ["run-0", "run-2"]
    assert listed["next_page_token"] is None
    code, out, _ = cli("runs", "list", "-n", "2", "-o", "metrics.auc")
    assert code == 0
    assert "run-2" in out and "run-0" in out and "run-1" not in out
    assert "--page-token" in out


def test_runs_show_compare_and_delete(cli: Invoke, filled: TrackingService, tmp_path: Path) -> None:
    ids = [r.id for r in filled.search_runs("churn", order_by="run_name")]
    code, out, _ = cli("runs", "show", ids[0], "--json")
    shown = json.loads(out)
    assert code == 0
    assert shown["run"]["params"] == {"model": "rf"}
    assert [a["name"] for a in shown["artifacts"]] == ["notes.txt"]
    filled.log_batch(ids[0], [Metric("loss", v, step, 2) for step, v in enumerate([0.9, 0.4, 0.6, 0.2])])
    code, out, _ = cli("runs", "show", ids[0])
    assert code == 0 and "run-0" in out and "notes.txt" in out
    assert "experiment   churn (" in out  # by name, not only its id
    loss = next(line for line in out.splitlines() if "│ loss" in line)
    assert [c.strip() for c in loss.split("│")[1:6]] == [
        "loss",
        "0.2",
        "0.2",
        "0.9",
        "4",
    ]  # last min max steps
    assert "█" in loss and "▁" in loss  # its history, drawn

    code, out, _ = cli("runs", "artifacts", "list", ids[0])
    assert code == 0 and "notes.txt" in out and "5" in out
    target = tmp_path / "downloaded"
    assert cli("runs", "artifacts", "download", ids[0], "--output", str(target))[0] == 0
    assert (target / "notes.txt").read_bytes() == b"hello"

    code, out, _ = cli("runs", "compare", ids[0], ids[1], "--json")
    assert [r["params.model"] for r in json.loads(out)] == ["rf", "gbm"]
    code, out, _ = cli("runs", "compare", ids[0], ids[1])
    assert "metrics.auc" in out

    code, out, _ = cli("runs", "delete", ids[0])
    assert code == 0 and "deleted 1 run" in out
    filled.start_run("churn", run_name="env", environment={"python": "3.11", "packages": {"numpy": "2.0"}})
    code, out, _ = cli("runs", "list", "--json")
    listed = json.loads(out)["runs"]
    assert ids[0] not in {r["id"] for r in listed}
    (env,) = [r["environment"] for r in listed if r["name"] == "env"]
    assert env == {"python": "3.11"}  # the package list is `runs show`'s, not every listing's


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "nope"], "'nope' is not a run id"),
        (["runs", "show", "0" * 32], "does not exist"),
        (["runs", "list", "-f", "metrics.auc >"], "expected a value for metrics.auc"),
        (["runs", "list", "-e", "missing"], "experiment 'missing' does not exist"),
        (["runs", "delete", "0" * 32], "does not exist"),
        (["ui", "--host", "0.0.0.0"], "listens on loopback only, not 0.0.0.0"),
    ],
)
def test_errors_are_one_clear_line_without_traceback(cli: Invoke, args: list[str], message: str) -> None:
    code, out, err = cli(*args)
    assert code == 1
    assert message in err
    assert "Traceback" not in err + out


def test_usage_errors_exit_2(cli: Invoke) -> None:
    code, _, err = cli("runs", "shw")
    assert code == 2 and "No such command" in err


def test_db_upgrade_reports_the_schema(cli: Invoke) -> None:
    code, out, _ = cli("db", "upgrade")
    assert code == 0 and HEAD_REVISION in out
    code, out, _ = cli("db", "upgrade")
    assert code == 0 and "up to date" in " ".join(out.split())  # Rich wraps a long URL
