"""Model loading and single-row prediction, per flavor, and scikit-learn against MLflow.

    .venv/bin/python -m benchmarks.model_serving [--skip-mlflow]

For each flavor the same classifier task is saved with loopline, then measured: load
time (warm, in this process; and in a fresh process for scikit-learn), and single-row
predict latency through `LoadedModel.predict` against the native model's own predict on
the same row. The overhead is the difference. MLflow's pyfunc is measured the same way
in its own virtualenv, on the identical logistic regression.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.run_all import PEER_PYTHON, ensure_peers_venv
from benchmarks.workload import FEATURES, classification_data, paired_call_us
from loopline.models import load_model_dir, save_model
from loopline.models.flavors import LoadOptions

HERE = Path(__file__).resolve().parent


def _models(x: pd.DataFrame, y: Any) -> dict[str, tuple[Any, Callable[[pd.DataFrame], Any]]]:
    """flavor -> (model to save, how the bare model predicts one row)."""
    import lightgbm
    import onnxruntime
    import torch
    import xgboost
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    logistic = LogisticRegression().fit(x, y)
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(x, y)
    boosted = xgboost.XGBClassifier(n_estimators=50).fit(x, y)
    light = lightgbm.LGBMClassifier(n_estimators=50, verbose=-1).fit(x, y)
    exported = to_onnx(logistic, x.to_numpy(np.float32)[:1], options={id(logistic): {"zipmap": False}})
    session = onnxruntime.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    net = torch.nn.Sequential(
        torch.nn.Linear(len(FEATURES), 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
    ).eval()

    def torch_predict(row: pd.DataFrame) -> Any:
        with torch.inference_mode():
            return net(torch.tensor(row.to_numpy(np.float32))).argmax(1)

    return {
        "sklearn (logistic regression)": (logistic, logistic.predict),
        "sklearn (random forest, 50 trees)": (forest, forest.predict),
        "xgboost (50 trees)": (boosted, boosted.predict),
        "lightgbm (50 trees)": (light, light.predict),
        "onnx (logistic regression)": (
            exported,
            lambda row: session.run(None, {"X": row.to_numpy(np.float32)})[0],
        ),
        "pytorch (MLP)": (net, torch_predict),
    }


def measure_flavors(workdir: Path) -> list[dict[str, Any]]:
    x, y = classification_data()
    row = x.iloc[[0]]
    results = []
    for label, (model, bare_predict) in _models(x, y).items():
        directory = workdir / label.split(" ")[0] / str(len(results))
        extra = {"classes": [0, 1]} if label.startswith("pytorch") else {}
        save_model(model, directory, input_example=x.head(), **extra)
        start = time.perf_counter()
        loaded = load_model_dir(directory, LoadOptions())
        load_ms = (time.perf_counter() - start) * 1000
        bare, ours = paired_call_us(
            functools.partial(bare_predict, row), functools.partial(loaded.predict, row)
        )
        results.append(
            {
                "flavor": label,
                "load_warm_ms": load_ms,
                "bare_us": bare,
                "loopline_us": ours,
                "overhead_us": ours - bare,
            }
        )
    return results


def cold_load_s(directory: Path) -> float:
    code = (
        "from pathlib import Path; from loopline.models import load_model_dir; "
        f"load_model_dir(Path({str(directory)!r}))"
    )
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="loopline-serving-"))
    flavors = measure_flavors(workdir)
    sklearn_dir = next(workdir.glob("sklearn/0"))
    ours = {**flavors[0], "load_cold_s": cold_load_s(sklearn_dir)}

    print(f"{'flavor':<36} {'load ms':>8} {'bare µs':>9} {'loopline µs':>12} {'overhead µs':>12}")
    for r in flavors:
        timings = f"{r['bare_us']:>9.1f} {r['loopline_us']:>12.1f} {r['overhead_us']:>12.1f}"
        print(f"{r['flavor']:<36} {r['load_warm_ms']:>8.1f} {timings}")
    result: dict[str, Any] = {"flavors": flavors, "sklearn_cold_load_s": ours["load_cold_s"]}
    if not args.skip_mlflow:
        ensure_peers_venv()
        done = subprocess.run(
            [str(PEER_PYTHON), str(HERE / "peers" / "mlflow_models.py"), "--workdir", str(workdir)],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        mlflow = json.loads(done.stdout)
        result["mlflow"] = mlflow
        print(
            "\nscikit-learn logistic regression, one row: "
            f"loopline vs MLflow {mlflow['mlflow_version']} pyfunc"
        )
        rows = [
            ("bare predict, µs", ours["bare_us"], mlflow["bare_predict_us"]),
            ("served predict, µs", ours["loopline_us"], mlflow["pyfunc_predict_us"]),
            ("overhead, µs", ours["overhead_us"], mlflow["overhead_us"]),
            ("load in a fresh process, s", ours["load_cold_s"], mlflow["load_cold_s"]),
            ("load, warm, ms", ours["load_warm_ms"], mlflow["load_warm_ms"]),
        ]
        for label, a, b in rows:
            print(f"  {label:<28} {a:>10.2f} {b:>10.2f}")
        share = ours["overhead_us"] / mlflow["overhead_us"]
        verdict = "met" if share <= 0.2 else "MISSED"
        print(f"  overhead as a share of MLflow's: {share:.1%} (target <= 20%: {verdict})")
    (workdir / "results.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
