"""A serving soak: valid traffic mixed with bombs and poisoned feedback, against one worker.

    .venv/bin/python -m benchmarks.serving_soak [--duration 30]

`loopline serve` (one worker) answers, for `--duration` seconds, four clients at once:
single-row JSON predictions, a Parquet body that decodes to 2,000,000 rows and a CSV of
350,000 columns every half second, and feedback whose labels mix JSON types (1, "yes", 2.5,
true) for answered requests. A fifth client asks `/health` every 50 ms. Then the server
stops (SIGTERM: it writes its log) and the log is read back.

Reported, with the targets: every answered row in the log (none lost), `/health` p99 under
100 ms, and the server's resident memory at the end within 20% of what it was after warm-up.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.serving_http import REGISTER, _row
from benchmarks.workload import free_port

PREDICT = "/v1/deployments/cancer/predict"
FEEDBACK = "/v1/deployments/cancer/feedback"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _bombs(columns: list[str]) -> tuple[bytes, bytes]:
    sink = io.BytesIO()
    frame = pd.DataFrame({c: np.zeros(2_000_000) for c in columns})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    wide = ",".join(f"c{i}" for i in range(350_000)) + "\n" + ",".join("1" for _ in range(350_000)) + "\n"
    return sink.getvalue(), wide.encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loopline-soak-"))
    home = work / "home"
    subprocess.run([sys.executable, "-c", REGISTER, str(home)], check=True, capture_output=True)
    cli = [sys.executable, "-m", "loopline", "--home", str(home)]
    create = [*cli, "deployments", "create", "cancer", "--model", "models:/cancer/1"]
    subprocess.run(create, check=True, capture_output=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*cli, "serve", "--deployment", "cancer", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    row = _row()
    parquet_bomb, wide_csv = _bombs(list(row))
    answered: list[str] = []
    statuses: dict[str, dict[int, int]] = {"predict": {}, "bombs": {}, "feedback": {}}
    health_ms: list[float] = []
    stop = threading.Event()

    def count(kind: str, status: int) -> None:
        statuses[kind][status] = statuses[kind].get(status, 0) + 1

    def predictions() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                answer = client.post(PREDICT, json={"records": [row]})
                count("predict", answer.status_code)
                if answer.status_code == 200:
                    answered.append(answer.json()["request_id"])

    def bombs() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                for body, kind in ((parquet_bomb, "application/vnd.apache.parquet"), (wide_csv, "text/csv")):
                    count(
                        "bombs",
                        client.post(PREDICT, content=body, headers={"content-type": kind}).status_code,
                    )
                stop.wait(0.5)

    def poison() -> None:
        labels: list[object] = [1, "yes", 2.5, True]
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                recent = answered[-4:]
                if len(recent) == 4:
                    body = {
                        "labels": [{"request_id": i, "label": v} for i, v in zip(recent, labels, strict=True)]
                    }
                    count("feedback", client.post(FEEDBACK, json=body).status_code)
                stop.wait(0.2)

    def health() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                started = time.perf_counter()
                client.get("/health")
                health_ms.append((time.perf_counter() - started) * 1000)
                stop.wait(0.05)

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        with httpx.Client(base_url=url) as client:
            for _ in range(200):  # warm-up
                client.post(PREDICT, json={"records": [row]})
        start_mb = _rss_mb(server.pid)
        threads = [threading.Thread(target=f) for f in (predictions, predictions, bombs, poison, health)]
        for thread in threads:
            thread.start()
        time.sleep(args.duration)
        stop.set()
        for thread in threads:
            thread.join()
        time.sleep(2)  # the log's buffer and the allocator settle
        end_mb = _rss_mb(server.pid)
        ready = httpx.get(f"{url}/ready", timeout=5).json()
    finally:
        server.terminate()
        server.wait(timeout=60)

    from loopline.artifacts.tables import TableArea
    from loopline.predictions.reader import LogReader

    con = LogReader(TableArea(str(home / "artifacts" / "tables")), "cancer").connect()
    logged = {r for (r,) in con.execute("SELECT request_id FROM predictions").fetchall()}
    lost = [i for i in answered if i not in logged]
    p99 = statistics.quantiles(health_ms, n=100)[98] if len(health_ms) >= 100 else max(health_ms)
    print(f"{args.duration:.0f} s, 1 worker: answers by status {json.dumps(statuses)}")
    print(f"log failing at the end: {ready['log_failing']}")
    kept = len(answered) - len(lost)
    print(f"answered rows {len(answered):,}, in the log {kept:,}, lost {len(lost)} (target 0)")
    print(f"/health p99 {p99:.1f} ms over {len(health_ms)} probes (target < 100 ms)")
    growth = (end_mb - start_mb) / start_mb
    print(f"memory {start_mb:.0f} MiB after warm-up, {end_mb:.0f} MiB at the end: {growth:+.0%}", end="")
    print(" (target within 20%)")


if __name__ == "__main__":
    main()
