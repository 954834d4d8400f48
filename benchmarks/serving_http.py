"""Online serving throughput and tail latency: loopline against `mlflow models serve` and
against a minimal ASGI app, same model, same worker count, same load generator.

    .venv/bin/python -m benchmarks.serving_http [--duration 15]

The model is a scikit-learn LogisticRegression on the breast-cancer data. wrk (2 threads)
posts a single-row JSON body over 16 connections to each server in turn, one server at a
time; then loopline is measured at 64 connections with and without micro-batching. wrk
shares the machine's two cores with the server, so only figures from this one run are
compared with each other.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.run_all import PEER_PYTHON, ensure_peers_venv
from benchmarks.workload import free_port

HERE = Path(__file__).resolve().parent
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY"), "r")
wrk.body = f:read("*all")
f:close()
"""
REGISTER = """
import sys
import loopline as ll
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
ll.configure(home=sys.argv[1])
features, target = load_breast_cancer(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=5000).fit(features, target)
with ll.start_run("bench") as run:
    run.log_model(model, "cancer", input_example=features.head())
"""


def _row() -> dict[str, float]:
    from sklearn.datasets import load_breast_cancer

    features, _ = load_breast_cancer(return_X_y=True, as_frame=True)
    return {k: float(v) for k, v in features.iloc[0].items()}


@contextlib.contextmanager
def _server(
    command: list[str], url_ready: str, ok: tuple[int, ...] = (200,), env: dict[str, str] | None = None
) -> Iterator[None]:
    """Run a server until the block ends; ready once `url_ready` answers one of `ok`."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                output = process.stderr.read().decode()[-2000:] if process.stderr else ""
                raise RuntimeError(f"{command[:3]} exited: {output}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url_ready, timeout=1).status_code in ok:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} did not start")
            time.sleep(0.2)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def wrk(url: str, body: Path, script: Path, connections: int, duration: int) -> dict[str, float]:
    env = {**os.environ, "BODY": str(body)}
    subprocess.run(
        ["wrk", "-t2", "-c4", "-d2s", "-s", str(script), url], env=env, check=True, capture_output=True
    )
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    throughput = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if throughput is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return {
        "requests_per_s": float(throughput.group(1)),
        "p99_ms": float(p99.group(1)) * scale,
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    ensure_peers_venv()
    work = Path(tempfile.mkdtemp(prefix="loopline-serving-bench-"))
    script = work / "post.lua"
    script.write_text(LUA)
    row = _row()
    records = work / "records.json"
    records.write_text(json.dumps({"records": [row]}))
    mlflow_body = work / "mlflow.json"
    mlflow_body.write_text(json.dumps({"dataframe_records": [row]}))

    # loopline: register the model and create the deployment as a user would
    home = work / "home"
    subprocess.run([sys.executable, "-c", REGISTER, str(home)], check=True, capture_output=True)
    cli = [sys.executable, "-m", "loopline", "--home", str(home)]
    subprocess.run(
        [*cli, "deployments", "create", "cancer", "--model", "models:/cancer/1"],
        check=True,
        capture_output=True,
    )
    results: dict[str, Any] = {}

    def loopline(connections: int, batching: bool) -> dict[str, float]:
        port = free_port()
        command = [*cli, "serve", "--deployment", "cancer", "--port", str(port), "--workers", "1"]
        if not batching:
            command.append("--no-batching")
        with _server(command, f"http://127.0.0.1:{port}/ready"):
            url = f"http://127.0.0.1:{port}/v1/deployments/cancer/predict"
            return wrk(url, records, script, connections, args.duration)

    port = free_port()
    minimal = [sys.executable, str(HERE / "peers" / "minimal_asgi.py"), "--port", str(port)]
    with _server(minimal, f"http://127.0.0.1:{port}/", ok=(500,)):  # it answers nothing but a POSTed row
        results["minimal ASGI app"] = wrk(f"http://127.0.0.1:{port}/", records, script, 16, args.duration)
    results["loopline"] = loopline(16, batching=True)
    results["loopline, no batching"] = loopline(16, batching=False)

    model_dir = work / "mlflow-model"
    saver = [str(PEER_PYTHON), str(HERE / "peers" / "mlflow_serving_model.py"), str(model_dir)]
    subprocess.run(saver, check=True, capture_output=True)
    port = free_port()
    mlflow = [str(PEER_PYTHON.parent / "mlflow"), "models", "serve", "-m", str(model_dir)]
    path = {**os.environ, "PATH": f"{PEER_PYTHON.parent}:{os.environ['PATH']}"}  # it starts `uvicorn` by name
    serve = [*mlflow, "--env-manager", "local", "-p", str(port), "-w", "1"]
    with _server(serve, f"http://127.0.0.1:{port}/ping", env=path):
        results["mlflow models serve"] = wrk(
            f"http://127.0.0.1:{port}/invocations", mlflow_body, script, 16, args.duration
        )

    results["loopline, 64 connections"] = loopline(64, batching=True)
    results["loopline, 64 connections, no batching"] = loopline(64, batching=False)
    _report(results, args.duration)
    (work / "results.json").write_text(json.dumps(results, indent=2))


def _report(results: dict[str, Any], duration: int) -> None:
    ours, theirs, floor = results["loopline"], results["mlflow models serve"], results["minimal ASGI app"]
    print(f"single-row JSON, 1 worker, wrk -t2 -c16 for {duration}s (64 connections where said)")
    print(f"{'server':<40} {'req/s':>10} {'p99 ms':>9} {'non-2xx':>8}")
    for name, r in results.items():
        print(f"{name:<40} {r['requests_per_s']:>10,.0f} {r['p99_ms']:>9.2f} {int(r['non_2xx']):>8}")
    versus_mlflow = ours["requests_per_s"] / theirs["requests_per_s"]
    versus_floor = ours["requests_per_s"] / floor["requests_per_s"]
    unbatched = results["loopline, no batching"]["requests_per_s"] / floor["requests_per_s"]
    print(f"loopline / mlflow throughput:             {versus_mlflow:.1f}x (target >= 3x)")
    print(f"loopline / minimal ASGI throughput:       {versus_floor:.0%} (target >= 70%)")
    print(f"loopline without batching / minimal ASGI: {unbatched:.0%}")
    verdict = "lower" if ours["p99_ms"] < theirs["p99_ms"] else "NOT lower"
    print(f"p99 at 16 connections: {ours['p99_ms']:.2f} ms vs MLflow {theirs['p99_ms']:.2f} ms ({verdict})")
    batched = results["loopline, 64 connections"]["requests_per_s"]
    gain = batched / results["loopline, 64 connections, no batching"]["requests_per_s"]
    print(f"micro-batching at 64 connections: {gain:.2f}x the throughput without it")


if __name__ == "__main__":
    main()
