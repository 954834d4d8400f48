"""Datasets from the SDK and the command line: register, list, show, diff, and the run
that read a dataset showing it as an input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import Invoke

SCRIPT = """
import loopline as ll, numpy as np, pandas as pd
rng = np.random.default_rng(0)
frame = pd.DataFrame({"age": rng.integers(18, 90, 3000), "plan": rng.choice(["a", "b"], 3000)})
with ll.start_run("churn") as run:
    data = ll.datasets.register("customers", frame)
    print(run.id, data.uri, len(data.to_pandas()))
print(ll.monitoring.detect_drift(data, frame.assign(age=frame.age + 20)).drifted_columns)
print(ll.datasets.get("customers@1").digest == data.digest, [d.name for d in ll.datasets.list_datasets()])
"""


def test_the_sdk_registers_and_the_run_shows_its_input(tmp_path: Path) -> None:
    env = {**os.environ, "LOOPLINE_HOME": str(tmp_path / "home")}
    env.pop("LOOPLINE_STORE_URI", None)
    env.pop("LOOPLINE_ARTIFACTS_URI", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    first, drifted, found = done.stdout.strip().splitlines()
    run_id, uri, rows = first.split()
    assert uri == "datasets:/customers/1" and rows == "3000"
    assert drifted == "['age']" and found == "True ['customers']"
    shown = subprocess.run(
        [sys.executable, "-m", "loopline", "runs", "show", run_id], env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0 and "customers" in shown.stdout and "datasets:/customers/1" in shown.stdout
    traced = subprocess.run(  # the form the tool prints, it takes
        [sys.executable, "-m", "loopline", "lineage", "datasets:/customers/1"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert traced.returncode == 0 and f"run:{run_id}" in traced.stdout


def _frame(seed: int, rows: int = 4_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 90, rows), "plan": rng.choice(["a", "b", "c"], rows)})


def test_register_list_show_versions_and_diff(cli: Invoke, tmp_path: Path) -> None:
    _frame(1).to_csv(tmp_path / "v1.csv", index=False)
    shifted = _frame(2).assign(age=lambda f: f["age"] + 30, region="eu")
    shifted.to_parquet(tmp_path / "v2.parquet")
    code, out, err = cli(
        "datasets", "register", "customers", str(tmp_path / "v1.csv"), "--description", "all"
    )
    assert code == 0 and "registered datasets:/customers/1 (4,000 rows" in out, err
    code, out, _ = cli("datasets", "register", "customers", str(tmp_path / "v1.csv"))
    assert code == 0 and "unchanged" in out and "datasets:/customers/1" in out
    code, out, _ = cli("datasets", "register", "customers", str(tmp_path / "v2.parquet"), "--json")
    assert code == 0 and json.loads(out)["dataset"]["version"] == 2
    code, out, _ = cli("datasets", "list")
    assert code == 0 and "customers" in out and "4,000" in out
    code, out, _ = cli("datasets", "versions", "customers")
    assert code == 0 and "v1.csv" in out and "v2.parquet" in out
    code, out, _ = cli("datasets", "show", "customers@1")
    assert code == 0 and "age" in out and "int64" in out and "plan" in out
    code, out, _ = cli("datasets", "show", "customers", "--json")
    assert code == 0 and {c["name"] for c in json.loads(out)["columns"]} == {"age", "plan", "region"}
    code, out, _ = cli("datasets", "diff", "customers@1", "customers@2")
    assert code == 0 and "+ column region" in out and "drifted" in out
    code, out, _ = cli("datasets", "diff", "customers@1", "customers@2", "--json")
    changes = {c["column"]: c for c in json.loads(out)["changes"]}
    assert changes["age"]["drifted"] and not changes.get("plan", {}).get("drifted")


def test_bad_input_is_one_line_and_exit_1(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    code, _, err = cli("datasets", "register", "x", str(tmp_path / "ragged.csv"))
    assert code == 1 and "line 3 has 1 fields where the header has 2" in err and "Traceback" not in err
    code, _, err = cli("datasets", "show", "nothing@1")
    assert code == 1 and "dataset 'nothing' does not exist" in err
    code, _, err = cli("datasets", "show", "bad name!")
    assert code == 1 and "dataset name" in err


def test_data_drift_between_files_and_datasets(cli: Invoke, tmp_path: Path) -> None:
    _frame(1).to_parquet(tmp_path / "reference.parquet")
    _frame(2).to_csv(tmp_path / "same.csv", index=False)
    _frame(3).assign(age=lambda f: f["age"] + 25).to_csv(tmp_path / "older.csv", index=False)
    code, out, _ = cli("data", "drift", str(tmp_path / "reference.parquet"), str(tmp_path / "same.csv"))
    assert code == 0 and "0 of 2 columns drifted" in out and "no dataset drift" in out
    code, out, _ = cli(
        "data", "drift", str(tmp_path / "reference.parquet"), str(tmp_path / "older.csv"), "--fail-on-drift"
    )
    assert code == 1 and "1 of 2 columns drifted" in out
    cli("datasets", "register", "people", str(tmp_path / "reference.parquet"))
    code, out, _ = cli(
        "data", "drift", "people@1", str(tmp_path / "older.csv"), "--json", "--test", "age=psi"
    )
    result = json.loads(out)
    assert code == 0 and result["drifted_columns"] == ["age"] and result["columns"][0]["test"] == "psi"
    code, _, err = cli("data", "drift", "people@1", str(tmp_path / "older.csv"), "--test", "age")
    assert code == 1 and "COLUMN=TEST" in err
