"""Peer benchmark: MLflow's scikit-learn flavor served through pyfunc.

    benchmarks/.peers-venv/bin/python benchmarks/peers/mlflow_models.py --workdir DIR

Saves the workload's logistic regression with `mlflow.sklearn.save_model` (with an input
example, so a signature is enforced, and pip requirements given so that inferring them
is not timed), then measures: load time in a fresh process and warm, and single-row
predict latency of `pyfunc.predict` against the bare model's `predict` on the same row.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for benchmarks.workload
from benchmarks.workload import classification_data, paired_call_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    path = args.workdir / "mlflow-model"
    x, y = classification_data()
    model = LogisticRegression().fit(x, y)
    mlflow.sklearn.save_model(model, str(path), input_example=x.head(), pip_requirements=["scikit-learn"])

    code = f"import mlflow.pyfunc; mlflow.pyfunc.load_model({str(path)!r})"
    cold = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        cold.append(time.perf_counter() - start)
    warm_start = time.perf_counter()
    loaded = mlflow.pyfunc.load_model(str(path))
    warm = time.perf_counter() - warm_start

    row = x.iloc[[0]]
    bare, served = paired_call_us(lambda: model.predict(row), lambda: loaded.predict(row))
    assert (loaded.predict(x.head(50)) == model.predict(x.head(50))).all()
    print(
        json.dumps(
            {
                "mlflow_version": mlflow.__version__,
                "load_cold_s": statistics.median(cold),
                "load_warm_ms": warm * 1000,
                "bare_predict_us": bare,
                "pyfunc_predict_us": served,
                "overhead_us": served - bare,
            }
        )
    )


if __name__ == "__main__":
    main()
