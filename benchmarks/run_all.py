"""Run loopline's and MLflow's benchmarks one after the other and compare them: tracking,
then model loading and prediction (benchmarks.model_serving), then online serving over
HTTP (benchmarks.serving_http), then tracking through the team server (benchmarks.server).

    .venv/bin/python -m benchmarks.run_all [--runs 100000] [--postgres URL] [--quick]

MLflow lives in its own virtualenv (benchmarks/.peers-venv, created on first use from
peers/requirements.txt), never in loopline's. Nothing runs concurrently: on a 2-core
machine a second process would distort both figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".peers-venv"
PEER_PYTHON = PEERS_VENV / "bin" / "python"

# (figure, better when, target ratio or absolute bound, description)
COMPARISONS = [
    ("log_metric_calls_per_s", "higher", 50, "per-call log_metric, calls/s (durable at run end)"),
    ("log_batch_values_per_s", "higher", 10, "log_batch, 100k values in calls of 1,000, values/s"),
    ("search_runs_p50_ms", "lower", 10, "search_runs, 2 conditions + order by, p50 ms"),
    ("search_runs_p90_ms", "lower", None, "search_runs, p90 ms"),
]


def ensure_peers_venv() -> None:
    """The peers' own virtualenv (MLflow, Evidently, pandera), brought in step with
    peers/requirements.txt whenever that file changes."""
    requirements = HERE / "peers" / "requirements.txt"
    stamp = PEERS_VENV / "requirements.installed"
    if stamp.exists() and stamp.read_text() == requirements.read_text():
        return
    if not PEER_PYTHON.exists():
        print(f"creating {PEERS_VENV} with the peers (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    pip = [str(PEER_PYTHON), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    stamp.write_text(requirements.read_text())


def run_json(command: list[str]) -> dict[str, Any]:
    print("$ " + " ".join(command), file=sys.stderr)
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, cwd=HERE.parent)
    print(f"  ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])  # the last line: the figures
    return result


def ratio(ours: float, theirs: float, better: str) -> float:
    return ours / theirs if better == "higher" else theirs / ours


def report(ours: dict[str, Any], mlflow: dict[str, Any]) -> list[str]:
    lines = [
        f"loopline {ours['loopline_version']} ({ours['store']}) vs MLflow {mlflow['mlflow_version']} "
        f"(sqlite), {ours['runs']:,} runs in the search experiment",
        f"{'figure':<52} {'loopline':>12} {'MLflow':>12} {'ratio':>8}  target",
    ]
    for key, better, target, label in COMPARISONS:
        r = ratio(ours[key], mlflow[key], better)
        verdict = "" if target is None else (f">= {target}x " + ("met" if r >= target else "MISSED"))
        lines.append(f"{label:<52} {ours[key]:>12,.1f} {mlflow[key]:>12,.1f} {r:>7.1f}x  {verdict}")
    p50 = ours["search_runs_p50_ms"]
    lines.append(
        f"{'search_runs p50 <= 50 ms':<52} {p50:>12.1f} {'':>12} {'':>8}  {'met' if p50 <= 50 else 'MISSED'}"
    )
    one_call = ours["log_batch_one_call_values_per_s"]
    lines.append(f"{'log_batch, 100k values in one call, values/s':<52} {one_call:>12,.0f}")
    imports = (ours["import_loopline_s"], mlflow["import_mlflow_s"])
    bound = "met" if imports[0] <= 0.3 else "MISSED"
    lines.append(
        f"{'import time, s (target <= 0.3)':<52} {imports[0]:>12.3f} {imports[1]:>12.3f} {'':>8}  {bound}"
    )
    same = (ours["search_runs_result_count"], ours["search_runs_first_auc"]) == (
        mlflow["search_runs_result_count"],
        mlflow["search_runs_first_auc"],
    )
    lines.append(f"both searches returned the same runs: {'yes' if same else 'NO'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--postgres", help="also measure loopline on this PostgreSQL URL (no peer)")
    args = parser.parse_args()
    runs = 2_000 if args.quick else args.runs
    workdir = HERE / ".work" / time.strftime("%Y%m%d-%H%M%S")
    ensure_peers_venv()

    sizes = ["--runs", str(runs)]
    ours = run_json(
        [
            *(sys.executable, "-m", "benchmarks.loopline_tracking", *sizes),
            *("--workdir", str(workdir / "loopline"), "--search-repeats", "20"),
        ]
    )
    # At 100k runs one MLflow search takes seconds: fewer repeats keep the run to minutes.
    peer = [str(PEER_PYTHON), str(HERE / "peers" / "mlflow_tracking.py"), *sizes]
    mlflow = run_json([*peer, "--workdir", str(workdir / "mlflow"), "--search-repeats", "5"])
    # MLflow never runs ANALYZE itself; measure its search with fresh planner statistics too.
    analyzed = run_json(
        [
            *peer,
            *("--workdir", str(workdir / "mlflow-analyzed"), "--analyze", "--search-repeats", "10"),
            *("--calls", "100", "--batch-values", "1000"),
        ]
    )
    lines = report(ours, mlflow)
    fair = analyzed["search_runs_p50_ms"]
    lines.append(
        f"{'search_runs p50 ms, MLflow after a manual ANALYZE':<52} {ours['search_runs_p50_ms']:>12.1f} "
        f"{fair:>12.1f} {fair / ours['search_runs_p50_ms']:>7.1f}x"
    )
    if args.postgres:
        pg = run_json(
            [
                sys.executable,
                "-m",
                "benchmarks.loopline_tracking",
                "--workdir",
                str(workdir / "loopline-pg"),
                "--store-uri",
                args.postgres,
                *sizes,
                *("--search-repeats", "20"),
            ]
        )
        lines.append(
            "loopline on PostgreSQL (no peer): "
            + ", ".join(f"{key} {pg[key]:,.1f}" for key, *_ in COMPARISONS)
        )
    results = {"loopline": ours, "mlflow": mlflow, "mlflow_analyzed": analyzed}
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))
    print()
    # model loading and prediction, per flavor and against MLflow's pyfunc; online serving;
    # tracking through the team server against an MLflow tracking server
    for benchmark in ("benchmarks.model_serving", "benchmarks.serving_http", "benchmarks.server"):
        subprocess.run([sys.executable, "-m", benchmark], check=True, cwd=HERE.parent)
        print()


if __name__ == "__main__":
    main()
