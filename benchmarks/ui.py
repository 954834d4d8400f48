"""The web UI at size: loopline's UI against MLflow's UI backend, same data, same machine.

    .venv/bin/python -m benchmarks.ui [--runs 100000] [--points 1000000] [--quick]

Data (benchmarks/ui_workload.py), inserted straight into each tool's own SQLite tables:
an experiment of --runs runs x 20 params x 20 metrics, and a run whose metric `loss` has
--points values. loopline alone also gets 100 runs x 5 metrics x 10,000 steps to compare
and a run with 2,000 metric keys, and an experiment of 200 runs with 2,000 metric keys each
(MLflow's UI has no server-side equivalent to time for these).

Measured, one server at a time (`loopline ui`, `mlflow server --workers 1`), each request
15 times after one warm-up, median:
* runs table, first page of 50 rows with 10 chosen columns: loopline's rendered page and its
  `POST /api/v1/runs/search`; MLflow's `POST ajax-api/2.0/mlflow/runs/search`, which its
  table calls (both return every param, metric and tag of the 50 runs). Then sorted by m0.
  Then the page of the experiment whose runs hold 2,000 metric keys each, which asks the
  store for its 10 columns only, against the same search bringing every key.
* one series of --points values: loopline's `GET /api/v1/runs/{id}/series` (300 buckets of
  min, max, last) and a zoom into 1% of it; MLflow's `metrics/get-history` (the whole history,
  every page) and `metrics/get-history-bulk-interval` (its charts' sampled call, 320 points).
* in Chromium (Debian's, if installed), loopline only, median of 5 after a warm-up: the runs
  table visible after navigation; the 1M-point chart drawn after navigation (its page loaded,
  the chart scrolled into view, its data fetched and drawn); the comparison of 100 runs
  (curves and parallel coordinates drawn); the page of the run with 2,000 metric keys
  interactive (heading and first charts drawn).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, select

from benchmarks.run_all import PEER_PYTHON, ensure_peers_venv, run_json
from benchmarks.server import LOOPLINE_PYTHON, Server, clean_env, mlflow_server, running
from benchmarks.ui_workload import (
    BASE_MS,
    PAGE,
    SEED,
    SERIES_KEY,
    SHOWN_COLUMNS,
    SORT_METRIC,
    run_values,
    series,
)
from benchmarks.workload import free_port
from loopline.core.entities import Metric
from loopline.store.metric_series import rollup_rows
from loopline.store.schema import runs as runs_table
from loopline.wiring.backends import local_owner, open_backends
from loopline.wiring.settings import Settings

HERE = Path(__file__).resolve().parent
REPEATS = 15
WIDE_KEYS = 2000
WIDE_RUNS = 200
CHROMIUM = Path("/usr/bin/chromium")


def log(message: str) -> None:
    print(f"[ui] {message}", file=sys.stderr, flush=True)


# loopline's store ---------------------------------------------------------------------


class Inserter:
    """Rows straight into loopline's tables (as the SDK would have stored them), in one transaction."""

    def __init__(self, home: Path) -> None:
        self.backends = open_backends(Settings(home=home))
        self.tracking = self.backends.services(local_owner()).tracking
        db = self.tracking._store.db  # the benchmark fills the tables below the service, once
        self.engine = db.engine
        self.next_pk = (db.read(lambda c: c.execute(select(func.max(runs_table.c.pk))).scalar()) or 0) + 1
        self.rows: dict[str, list[tuple[Any, ...]]] = {
            "runs": [], "params": [], "metrics": [], "latest": [], "rollups": [],
        }  # fmt: skip

    def run(self, experiment_id: int, name: str, start_ms: int) -> tuple[int, str]:
        pk, run_id = self.next_pk, f"{self.next_pk:032x}"
        self.next_pk += 1
        self.rows["runs"].append(
            (pk, run_id, experiment_id, name, "FINISHED", start_ms, start_ms + 500, "bench", "{}")
        )
        return pk, run_id

    def history(self, pk: int, key: str, points: list[tuple[int, float, int]]) -> None:
        self.rows["metrics"] += [(pk, key, value, step, ts) for step, value, ts in points]
        step, value, ts = points[-1]
        self.rows["latest"].append((pk, key, value, step, ts))
        if len(points) > 1:  # the summary the writer keeps of a history (one value needs none)
            batch = [Metric(key, value, step, ts) for step, value, ts in points]
            self.rows["rollups"] += [tuple(row.values()) for row in rollup_rows(pk, batch)]

    def commit(self) -> None:
        values = "(run_pk, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)"
        statements = {
            "runs": "INSERT INTO runs (pk, id, experiment_id, name, status, start_time, end_time, "
            "created_by, environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "params": "INSERT INTO params (run_pk, key, value) VALUES (?, ?, ?)",
            "metrics": f"INSERT INTO metrics {values}",
            "latest": f"INSERT INTO latest_metrics {values}",
            "rollups": "INSERT INTO metric_rollups (run_pk, key, bucket, count, min, max, first_step, "
            "last_step, first_timestamp, last_timestamp, last_value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        }
        with self.engine.begin() as conn:
            for table, statement in statements.items():
                conn.exec_driver_sql(statement, self.rows[table])
            conn.exec_driver_sql("ANALYZE")
        self.backends.close()


def populate_loopline(home: Path, runs: int, points: int) -> dict[str, Any]:
    fill = Inserter(home)
    bench = fill.tracking.create_experiment("bench").id
    rng = random.Random(SEED)
    for i in range(runs):
        pk, _ = fill.run(bench, f"run-{i}", BASE_MS + 1000 * i)
        params, metrics = run_values(i, rng)
        fill.rows["params"] += [(pk, k, v) for k, v in params.items()]
        for key, value in metrics.items():
            fill.history(pk, key, [(0, value, BASE_MS + 1000 * i + 400)])
    series_pk, series_run = fill.run(bench, "series", BASE_MS - 1000)
    fill.history(series_pk, SERIES_KEY, list(series(points)))
    compare = fill.tracking.create_experiment("compare").id
    compared = []
    for i in range(100):
        pk, run_id = fill.run(compare, f"compare-{i}", BASE_MS + i)
        compared.append(run_id)
        fill.rows["params"] += [(pk, "lr", str(0.001 * (i + 1))), (pk, "depth", str(i % 7))]
        for k in range(5):
            fill.history(pk, f"c{k}", [(s, (1 + k) / (s + 1 + i), BASE_MS + s) for s in range(10_000)])
    wide_pk, wide_run = fill.run(compare, "wide", BASE_MS)
    for k in range(WIDE_KEYS):
        fill.history(wide_pk, f"key_{k:04d}", [(s, rng.random(), BASE_MS + s) for s in range(20)])
    wide = fill.tracking.create_experiment("wide").id
    for i in range(WIDE_RUNS):  # every run with 2,000 metric keys
        pk, _ = fill.run(wide, f"wide-{i}", BASE_MS + i)
        for k in range(WIDE_KEYS):
            fill.history(pk, f"key_{k:04d}", [(0, rng.random(), BASE_MS + i)])
    fill.commit()
    return {
        "experiment_id": bench, "series_run": series_run, "compared": compared, "wide_run": wide_run,
        "wide_experiment": wide,
    }  # fmt: skip


# timing ---------------------------------------------------------------------------------


def median_ms(call: Callable[[], httpx.Response], repeats: int = REPEATS) -> tuple[float, int]:
    """Median wall time of `call` in ms after one warm-up, and the size of its answer's body."""
    answer = call()
    answer.raise_for_status()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        answer = call()
        timings.append((time.perf_counter() - start) * 1000)
        answer.raise_for_status()
    return statistics.median(timings), len(answer.content)


def measure_loopline_http(url: str, data: dict[str, Any]) -> dict[str, Any]:
    client = httpx.Client(base_url=url, timeout=120)
    shown = {"experiment": data["experiment_id"], "column": SHOWN_COLUMNS, "size": PAGE}
    page = f"/runs?{urlencode(shown, doseq=True)}"
    csrf = client.get(page).text.split('name="csrf-token" content="')[1].split('"')[0]
    search = {"experiments": [data["experiment_id"]], "max_results": PAGE}
    headers = {"x-csrf-token": csrf}
    figures: dict[str, Any] = {}
    figures["page_first_ms"], _ = median_ms(lambda: client.get(page))
    figures["page_sorted_ms"], _ = median_ms(lambda: client.get(f"{page}&order=metrics.{SORT_METRIC}+DESC"))
    figures["api_first_ms"], _ = median_ms(
        lambda: client.post("/api/v1/runs/search", json=search, headers=headers)
    )
    sorted_search = {**search, "order_by": [f"metrics.{SORT_METRIC} DESC"]}
    figures["api_sorted_ms"], _ = median_ms(
        lambda: client.post("/api/v1/runs/search", json=sorted_search, headers=headers)
    )
    wide = {"experiment": data["wide_experiment"], "column": [f"metric:key_{k:04d}" for k in range(10)]}
    figures["wide_page_ms"], _ = median_ms(lambda: client.get(f"/runs?{urlencode(wide, doseq=True)}"))
    everything = {"experiments": [data["wide_experiment"]], "max_results": PAGE}
    figures["wide_api_all_keys_ms"], _ = median_ms(
        lambda: client.post("/api/v1/runs/search", json=everything, headers=headers)
    )
    series_url = f"/api/v1/runs/{data['series_run']}/series"
    figures["series_ms"], size = median_ms(lambda: client.get(series_url, params={"key": SERIES_KEY}))
    figures["series_kb"] = size / 1024
    points = data["points"]
    zoom = {"key": SERIES_KEY, "start": points // 2, "end": points // 2 + points // 100}
    figures["zoom_ms"], _ = median_ms(lambda: client.get(series_url, params=zoom))
    return figures


def measure_chromium(url: str, data: dict[str, Any]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, Any] = {}
    page_url = (
        f"{url}/runs?{urlencode({'experiment': data['experiment_id'], 'column': SHOWN_COLUMNS}, doseq=True)}"
    )
    compare_url = f"{url}/compare?{urlencode({'run': data['compared']}, doseq=True)}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def timed(action: Callable[[], None]) -> float:
            action()  # warm-up: plotly.js and our files are in the cache afterwards
            timings = []
            for _ in range(5):
                start = time.perf_counter()
                action()
                timings.append((time.perf_counter() - start) * 1000)
            return statistics.median(timings)

        def table() -> None:
            page.goto(page_url, wait_until="commit")
            page.wait_for_selector("#runs tbody tr[data-href]")

        def chart() -> None:
            page.goto(f"{url}/runs/{data['series_run']}", wait_until="commit")
            page.locator(".chart").first.scroll_into_view_if_needed()
            page.wait_for_selector(".chart[data-drawn]", state="attached")

        def compare() -> None:
            page.goto(compare_url, wait_until="commit")
            page.wait_for_selector("#overlay[data-drawn]", state="attached")
            page.locator("#parallel").scroll_into_view_if_needed()
            page.wait_for_selector("#parallel[data-drawn]", state="attached")

        def wide() -> None:
            page.goto(f"{url}/runs/{data['wide_run']}", wait_until="commit")
            page.wait_for_selector("h1")
            page.locator("#charts").scroll_into_view_if_needed()
            page.wait_for_selector(".chart[data-drawn]", state="attached")

        figures["table_visible_ms"] = timed(table)
        figures["chart_navigation_ms"] = timed(chart)
        figures["compare_100_interactive_ms"] = timed(compare)
        figures["wide_run_interactive_ms"] = timed(wide)
        browser.close()
    return figures


def measure_loopline(work: Path, runs: int, points: int) -> dict[str, Any]:
    home = work / "loopline-home"
    log(f"loopline: inserting {runs:,} runs and a series of {points:,} points")
    data = {**populate_loopline(home, runs, points), "points": points}
    port = free_port()
    command = [str(LOOPLINE_PYTHON), "-m", "loopline", "--home", str(home), "ui", "--port", str(port)]
    with running(Server("loopline", command, port, clean_env()), work):
        url = f"http://127.0.0.1:{port}"
        figures = measure_loopline_http(url, data)
        if CHROMIUM.exists():
            figures.update(measure_chromium(url, data))
        else:
            log(f"no Chromium at {CHROMIUM}: the browser figures are left out")
    return figures


# MLflow ---------------------------------------------------------------------------------


def measure_mlflow(work: Path, runs: int, points: int) -> dict[str, Any]:
    db = work / "mlflow.db"
    log(f"MLflow: inserting {runs:,} runs and a series of {points:,} points")
    store = [str(PEER_PYTHON), str(HERE / "peers" / "mlflow_ui_store.py"), "--db", str(db)]
    data = run_json([*store, "--runs", str(runs), "--points", str(points)])
    server = mlflow_server(f"sqlite:///{db}", work)
    with running(server, work):
        client = httpx.Client(base_url=server.url, timeout=600)
        search = {
            "experiment_ids": [data["experiment_id"]],
            "max_results": PAGE,
            "run_view_type": "ACTIVE_ONLY",
        }
        path = "/ajax-api/2.0/mlflow/runs/search"
        figures: dict[str, Any] = {}
        figures["search_first_ms"], _ = median_ms(lambda: client.post(path, json=search))
        sorted_search = {**search, "order_by": [f"metrics.`{SORT_METRIC}` DESC"]}
        figures["search_sorted_ms"], _ = median_ms(lambda: client.post(path, json=sorted_search))

        def whole_history() -> httpx.Response:
            params = {"run_id": data["series_run"], "metric_key": SERIES_KEY}
            answer = client.get("/ajax-api/2.0/mlflow/metrics/get-history", params=params)
            size, token = len(answer.content), answer.json().get("next_page_token")
            while token:  # follow every page: the chart needs the whole history
                more = client.get(
                    "/ajax-api/2.0/mlflow/metrics/get-history", params={**params, "page_token": token}
                )
                size, token = size + len(more.content), more.json().get("next_page_token")
            answer.headers["x-total-bytes"] = str(size)
            return answer

        figures["history_ms"], _ = median_ms(whole_history, repeats=3)
        figures["history_kb"] = int(whole_history().headers["x-total-bytes"]) / 1024
        sampled = {"run_ids": data["series_run"], "metric_key": SERIES_KEY, "max_results": 320}
        interval = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
        figures["bulk_interval_ms"], size = median_ms(lambda: client.get(interval, params=sampled))
        figures["bulk_interval_kb"] = size / 1024
    return figures


def report(loopline: dict[str, Any], mlflow: dict[str, Any], runs: int, points: int) -> None:
    def row(name: str, ours: float | None, theirs: float | None, unit: str, target: str) -> None:
        mine = "-" if ours is None else f"{ours:,.1f} {unit}"
        peer = "-" if theirs is None else f"{theirs:,.1f} {unit}"
        ratio = f"{theirs / ours:,.1f}x" if ours and theirs else ""
        print(f"{name:<52} {mine:>14} {peer:>16} {ratio:>9}   {target}")

    print(f"\nthe web UI with {runs:,} runs x 20 params x 20 metrics and a series of {points:,} points")
    print(f"{'':<52} {'loopline':>14} {'MLflow':>16} {'faster':>9}   target")
    row("runs table, first page (rendered page)", loopline["page_first_ms"], None, "ms", "p50 <= 50 ms")
    row(
        "runs table, first page (API / ajax search)",
        loopline["api_first_ms"],
        mlflow["search_first_ms"],
        "ms",
        "",
    )
    row("runs table, sorted by a metric (rendered page)", loopline["page_sorted_ms"], None, "ms", "<= 100 ms")
    row(
        "runs table, sorted by a metric (API / ajax)",
        loopline["api_sorted_ms"],
        mlflow["search_sorted_ms"],
        "ms",
        "",
    )
    row("runs table, 2,000 metric keys per run (10 shown)", loopline["wide_page_ms"], None, "ms", "")
    row("  the same page through the API, every key", loopline["wide_api_all_keys_ms"], None, "ms", "")
    row(
        "series: chart data (vs MLflow get-history, all)",
        loopline["series_ms"],
        mlflow["history_ms"],
        "ms",
        "<= 100 ms",
    )
    row("series: chart data size", loopline["series_kb"], mlflow["history_kb"], "KB", "<= 100 KB")
    row("series: MLflow's sampled chart call (320 points)", None, mlflow["bulk_interval_ms"], "ms", "")
    row("series: zoom re-fetch (1% of the range)", loopline["zoom_ms"], None, "ms", "<= 100 ms")
    for key, label, target in (
        ("table_visible_ms", "Chromium: runs table visible after navigation", "<= 1000 ms"),
        ("chart_navigation_ms", "Chromium: 1M-point chart drawn after navigation", "<= 500 ms"),
        ("compare_100_interactive_ms", "Chromium: compare 100 runs x 5 x 10k interactive", "<= 2000 ms"),
        ("wide_run_interactive_ms", "Chromium: run with 2,000 metric keys interactive", "<= 1000 ms"),
    ):
        if key in loopline:
            row(label, loopline[key], None, "ms", target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="5,000 runs and 100,000 points: a smoke test")
    args = parser.parse_args()
    runs, points = (5_000, 100_000) if args.quick else (args.runs, args.points)
    ensure_peers_venv()
    with tempfile.TemporaryDirectory(prefix="loopline-ui-bench-") as tmp:
        work = Path(tmp)
        loopline = measure_loopline(work, runs, points)
        mlflow = measure_mlflow(work, runs, points)
    report(loopline, mlflow, runs, points)
    print(json.dumps({"loopline": loopline, "mlflow": mlflow}))


if __name__ == "__main__":
    main()
