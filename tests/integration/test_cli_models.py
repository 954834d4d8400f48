"""`loopline models ...` and `loopline lineage` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from loopline.tracking.tracker import Tracker
from tests.conftest import Invoke


@pytest.fixture
def data_file(tracker: Tracker, tmp_path: Path) -> Path:
    """Two versions of `clf` (the second better) and evaluation data as Parquet."""
    x, y = make_classification(1500, 4, class_sep=1.5, random_state=0)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(label=y)
    train, test = frame.iloc[:1000], frame.iloc[1000:]
    shuffled = train["label"].sample(frac=1.0, random_state=1).to_numpy()
    with tracker.start_run("cli") as run:
        run.log_input(train, "train")
        for labels in (shuffled, train["label"]):
            run.log_model(
                LogisticRegression().fit(train[["a", "b", "c", "d"]], labels),
                "clf",
                input_example=train[["a", "b", "c", "d"]].head(),
            )
    path = tmp_path / "test.parquet"
    test.to_parquet(path)
    return path


def test_listing_showing_and_versions(cli: Invoke, data_file: Path) -> None:
    code, out, _ = cli("models", "list", "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)] == ["clf"]
    code, out, _ = cli("models", "versions", "clf", "--json")
    assert [(v["version"], v["status"]) for v in json.loads(out)] == [(1, "READY"), (2, "READY")]
    code, out, _ = cli("models", "show", "clf")
    assert code == 0 and "READY" in out


def test_promote_refuse_force_alias_history(cli: Invoke, data_file: Path) -> None:
    assert cli("models", "promote", "clf", "2")[0] == 0
    code, _, err = cli("models", "promote", "clf", "1", "--data", str(data_file), "--target", "label")
    assert code == 1 and "[FAIL] better_than_current" in err
    code, out, _ = cli("models", "promote", "clf", "1", "--force", "--reason", "drill", "--json")
    assert code == 0 and json.loads(out)["forced"] is True
    code, _, err = cli("models", "promote", "clf", "1", "--force")
    assert code == 1 and "--force needs --reason" in err
    assert cli("models", "alias", "clf", "staging", "2", "--reason", "try it")[0] == 0
    code, out, _ = cli("models", "alias-history", "clf", "--json")
    moves = [(e["alias"], e["from_version"], e["to_version"], e["forced"]) for e in json.loads(out)]
    assert moves == [("champion", None, 2, False), ("champion", 2, 1, True), ("staging", None, 2, False)]
    code, out, _ = cli("models", "alias-history", "clf", "staging", "--json")
    assert [e["to_version"] for e in json.loads(out)] == [2]
    code, _, err = cli("models", "alias", "clf", "staging")  # setting needs a version: never a listing
    assert code == 1 and "give the VERSION @staging should point at, or --delete" in err
    assert cli("models", "alias", "clf", "staging", "2", "--delete")[0] == 1
    assert cli("models", "alias", "clf", "staging", "--delete")[0] == 0


def test_promote_with_a_policy_file(cli: Invoke, data_file: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "gates:\n  - metric_threshold: {metric: roc_auc, min: 0.8}\n  - latency: {p95_ms: 500}\n"
    )
    code, out, _ = cli(
        "models",
        "promote",
        "clf",
        "2",
        "--policy",
        str(policy),
        "--data",
        str(data_file),
        "--target",
        "label",
    )
    assert code == 0 and "[pass] metric_threshold" in out and "[pass] latency" in out
    policy.write_text("gates:\n  - teleport\n")
    code, _, err = cli("models", "promote", "clf", "2", "--policy", str(policy))
    assert code == 1 and "unknown kind 'teleport'" in err


def test_evaluate_card_lineage_and_delete(cli: Invoke, data_file: Path, tmp_path: Path) -> None:
    code, out, _ = cli(
        "models", "evaluate", "clf", "2", "--data", str(data_file), "--target", "label", "--json"
    )
    assert code == 0 and json.loads(out)["metrics"]["accuracy"] > 0.8
    code, out, _ = cli("models", "card", "clf", "2")
    assert code == 0 and out.startswith("# Model card: clf version 2")
    assert "data:image/png" not in out  # the Markdown card stays text
    page = tmp_path / "card.html"
    assert cli("models", "card", "clf", "2", "--html", "--output", str(page))[0] == 0
    html = page.read_text()
    assert "<table>" in html
    assert 'alt="roc.png"' in html and '<img src="data:image/png;base64,iVBOR' in html  # the plots, shown

    code, out, _ = cli("lineage", "models:/clf/2", "--json")
    graph = json.loads(out)
    assert {n["kind"] for n in graph["nodes"]} == {"model_version", "run", "dataset"}
    code, out, _ = cli("lineage", "models:/clf/2")
    assert code == 0 and "comes from" in out and "train" in out
    dataset = next(n["key"] for n in graph["nodes"] if n["label"] == "train")
    code, out, _ = cli("lineage", f"dataset:{dataset}", "--json")
    assert {n["label"] for n in json.loads(out)["nodes"] if n["kind"] == "model_version"} == {
        "clf/1",
        "clf/2",
    }
    code, out, _ = cli("lineage", f"dataset:{dataset}")
    printed = f"dataset:sha256:{dataset[:12]}"
    assert printed in out  # every form the tool prints, it takes back:
    assert json.loads(cli("lineage", printed, "--json")[1]) == json.loads(
        cli("lineage", f"dataset:{dataset}", "--json")[1]
    )
    run_ref = next(word for word in out.split() if word.startswith("run:"))
    assert cli("lineage", run_ref)[0] == 0
    code, _, err = cli("lineage", "dataset:sha256:000000000000")  # not a node: said, not an empty graph
    assert code == 1 and "no dataset in the lineage graph has a digest starting '000000000000'" in err

    assert cli("models", "delete", "clf", "1")[0] == 0
    code, _, err = cli("models", "delete", "nope")
    assert code == 1 and "does not exist" in err
    code, _, err = cli("lineage", "clf")
    assert code == 1 and "give models:/" in err
