"""Peer benchmark: MLflow experiment tracking on a SQLite backend store.

Run with the python of the peers virtualenv (see ``requirements.txt`` next to this file)::

    benchmarks/.peers-venv/bin/python benchmarks/peers/mlflow_tracking.py --workdir DIR \\
        [--runs 100000] [--calls 2000] [--batch-values 100000] [--search-repeats 20]

Prints exactly one JSON object on stdout; progress and MLflow's own logging go to stderr.

Setup (untimed): the tracking store is ``sqlite:///<workdir>/mlflow.db`` (MLflow 3 refuses ``file:``
stores by default). Creating it runs MLflow's migrations (~1.5 s), so it is created before anything is
timed. MLflow's defaults are otherwise left alone (synchronous logging, no system metrics, git/context
tags captured by ``start_run``). Each measurement uses its own experiment.

Measurements:

* ``log_metric_calls_per_s``: ``mlflow.log_metric("loss", v, step=i)`` ``--calls`` times inside
  ``mlflow.start_run()``; the clock starts inside the run and stops once the run has ended.
* ``log_batch_values_per_s``: ``MlflowClient.log_batch`` of ``--batch-values`` metric values in chunks
  of 1,000 (MLflow's per-call maximum); building the ``Metric`` objects is included.
* ``search_runs_p50_ms`` / ``search_runs_p90_ms``: ``mlflow.search_runs`` with
  ``metrics.auc > 0.9 and params.model = 'rf'`` ordered by ``metrics.auc DESC``, ``max_results=100``,
  over an experiment of ``--runs`` runs, after one warm-up call (percentiles interpolate linearly).
  The runs are inserted straight into MLflow's SQLite tables (``runs``, ``params``, ``tags``,
  ``metrics``, ``latest_metrics``) in one transaction, with the rows ``mlflow.start_run`` would write.
  The population is drawn from ``random.Random(42)``, per run in this order:
  ``model = rng.choice(MODELS)``, ``depth = rng.randint(1, 10)``, ``auc = rng.random()``,
  ``loss = rng.random()`` (see ``generate_population``). ``search_runs_result_count`` and
  ``search_runs_first_auc`` let a driver check that peers searched the same data.
  MLflow never runs SQLite's ``ANALYZE``; without its statistics SQLite 3.40 plans this query as a full
  scan of the materialized sort-key subquery for every matching run (rf runs with auc > 0.9 times all
  runs). That is what users get, so it is the default; ``--analyze`` runs ``ANALYZE`` after populating
  (untimed) to show the difference.
* ``import_mlflow_s`` / ``python_startup_s``: median of 3 fresh ``python -c "import mlflow"`` and
  ``python -c pass`` subprocesses.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sqlite3
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for benchmarks.workload
from benchmarks.workload import (
    BATCH_CHUNK,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    Population,
    generate_population,
    median_subprocess_s,
)

# Columns written per table when populating runs directly. Checked against MLflow's actual schema
# (``PRAGMA table_info``) before inserting, so a schema change fails loudly instead of silently.
INSERT_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": (
        "run_uuid",
        "name",
        "source_type",
        "source_name",
        "entry_point_name",
        "user_id",
        "status",
        "start_time",
        "end_time",
        "source_version",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
    ),
    "params": ("key", "value", "run_uuid"),
    "tags": ("key", "value", "run_uuid"),
    "metrics": ("key", "value", "timestamp", "step", "is_nan", "run_uuid"),
    "latest_metrics": ("key", "value", "timestamp", "step", "is_nan", "run_uuid"),
}


def log(message: str) -> None:
    print(f"[mlflow_tracking] {message}", file=sys.stderr, flush=True)


def expected_search(population: Population) -> tuple[int, float | None]:
    """Result count and first auc that the timed search must return."""
    aucs = sorted((auc for model, _, auc, _ in population if model == "rf" and auc > 0.9), reverse=True)
    return min(len(aucs), SEARCH_MAX_RESULTS), (aucs[0] if aucs else None)


def check_schema(conn: sqlite3.Connection) -> None:
    for table, columns in INSERT_COLUMNS.items():
        # PRAGMA table_info rows: (cid, name, type, notnull, dflt_value, pk)
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        names = {row[1] for row in info}
        required = {row[1] for row in info if row[3] and row[4] is None}
        if missing := set(columns) - names:
            raise RuntimeError(f"MLflow table {table!r} lacks expected columns {sorted(missing)}")
        if unfilled := required - set(columns):
            raise RuntimeError(f"MLflow table {table!r} has new NOT NULL columns {sorted(unfilled)}")


def insert_sql(table: str) -> str:
    columns = INSERT_COLUMNS[table]
    quoted = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(columns))})"


def populate(
    db_path: Path, experiment_id: str, artifact_location: str, population: Population, analyze: bool
) -> None:
    """Insert finished runs the way ``mlflow.start_run`` + ``log_param``/``log_metric`` would."""
    user = getpass.getuser()
    base_ms = int(time.time() * 1000) - 1000 * len(population)
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in INSERT_COLUMNS}
    for i, (model, depth, auc, loss) in enumerate(population):
        run_id = uuid.uuid4().hex
        name = f"run-{i}"
        start_ms = base_ms + 1000 * i  # distinct start times
        metric_ms = start_ms + 400
        rows["runs"].append(
            (
                run_id,
                name,
                "UNKNOWN",  # what MLflow itself stores; the real source type lives in the tags
                "",
                "",
                user,
                "FINISHED",
                start_ms,
                start_ms + 500,
                "",
                "active",
                f"{artifact_location}/{run_id}/artifacts",
                int(experiment_id),
            )
        )
        rows["params"] += [("model", model, run_id), ("depth", str(depth), run_id)]
        rows["tags"] += [
            ("mlflow.user", user, run_id),
            ("mlflow.source.name", "populate", run_id),
            ("mlflow.source.type", "LOCAL", run_id),
            ("mlflow.runName", name, run_id),
        ]
        for key, value in (("auc", auc), ("loss", loss)):
            rows["metrics"].append((key, value, metric_ms, 0, 0, run_id))
            rows["latest_metrics"].append((key, value, metric_ms, 0, 0, run_id))

    conn = sqlite3.connect(db_path)
    try:
        check_schema(conn)
        with conn:  # one transaction
            for table, table_rows in rows.items():
                conn.executemany(insert_sql(table), table_rows)
        if analyze:
            conn.execute("ANALYZE")
    finally:
        conn.close()


def verify_population(
    db_path: Path, client: MlflowClient, experiment_id: str, population: Population
) -> None:
    conn = sqlite3.connect(db_path)
    try:
        n_runs = conn.execute("SELECT COUNT(*) FROM runs WHERE experiment_id = ?", (int(experiment_id),))
        n_rf = conn.execute(
            "SELECT COUNT(*) FROM runs JOIN params ON params.run_uuid = runs.run_uuid"
            " WHERE runs.experiment_id = ? AND params.key = 'model' AND params.value = 'rf'",
            (int(experiment_id),),
        )
        counts = (n_runs.fetchone()[0], n_rf.fetchone()[0])
    finally:
        conn.close()
    expected = (len(population), sum(model == "rf" for model, *_ in population))
    if counts != expected:
        raise RuntimeError(f"SQL counts (runs, rf runs) = {counts}, expected {expected}")

    found = client.search_runs([experiment_id], filter_string="params.model = 'rf'", max_results=1)
    if expected[1] and (len(found) != 1 or found[0].data.params.get("model") != "rf"):
        raise RuntimeError(f"MlflowClient.search_runs does not see the populated runs: {found}")
    if found and set(found[0].data.metrics) != {"auc", "loss"}:
        raise RuntimeError(f"unexpected metrics on populated run: {found[0].data.metrics}")


def bench_log_metric(client: MlflowClient, artifact_root: Path, calls: int) -> float:
    location = str(artifact_root / "log_metric")
    experiment_id = client.create_experiment("log_metric", artifact_location=location)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        start = time.perf_counter()
        for i in range(calls):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    elapsed = time.perf_counter() - start

    history = client.get_metric_history(run.info.run_id, "loss")
    if len(history) != calls:
        raise RuntimeError(f"log_metric: {len(history)} values stored, expected {calls}")
    return calls / elapsed


def bench_log_batch(client: MlflowClient, artifact_root: Path, n_values: int) -> float:
    location = str(artifact_root / "log_batch")
    experiment_id = client.create_experiment("log_batch", artifact_location=location)
    run_id = client.create_run(experiment_id).info.run_id
    start = time.perf_counter()
    for offset in range(0, n_values, BATCH_CHUNK):
        timestamp = int(time.time() * 1000)
        steps = range(offset, min(offset + BATCH_CHUNK, n_values))
        client.log_batch(run_id, metrics=[Metric("value", 1.0 / (s + 1), timestamp, s) for s in steps])
    elapsed = time.perf_counter() - start
    client.set_terminated(run_id)

    stored = len(client.get_metric_history(run_id, "value"))
    if stored != n_values:
        raise RuntimeError(f"log_batch: {stored} values stored, expected {n_values}")
    return n_values / elapsed


def bench_search(
    client: MlflowClient, db_path: Path, artifact_root: Path, n_runs: int, repeats: int, analyze: bool
) -> dict[str, Any]:
    artifact_location = str(artifact_root / "search")
    experiment_id = client.create_experiment("search", artifact_location=artifact_location)
    population = generate_population(n_runs)
    start = time.perf_counter()
    populate(db_path, experiment_id, artifact_location, population, analyze)
    populate_s = time.perf_counter() - start
    log(f"populated {n_runs} runs in {populate_s:.1f} s")
    verify_population(db_path, client, experiment_id, population)

    def search() -> list[Any]:
        return mlflow.search_runs(
            experiment_ids=[experiment_id],
            filter_string=SEARCH_FILTER,
            order_by=SEARCH_ORDER_BY,
            max_results=SEARCH_MAX_RESULTS,
            output_format="list",
        )

    results = search()  # warm-up
    aucs = [r.data.metrics["auc"] for r in results]
    expected_count, expected_first = expected_search(population)
    if len(aucs) != expected_count or (aucs[0] if aucs else None) != expected_first:
        raise RuntimeError(
            f"search returned {len(aucs)} runs (first auc {aucs[:1]}), "
            f"expected {expected_count} (first auc {expected_first})"
        )
    if aucs != sorted(aucs, reverse=True):
        raise RuntimeError("search results are not ordered by auc descending")

    timings_ms = []
    for i in range(repeats):
        start = time.perf_counter()
        search()
        timings_ms.append((time.perf_counter() - start) * 1000)
        log(f"search {i + 1}/{repeats}: {timings_ms[-1]:.1f} ms")
    p90 = statistics.quantiles(timings_ms, n=10, method="inclusive")[8] if repeats > 1 else timings_ms[0]
    return {
        "search_runs_p50_ms": round(statistics.median(timings_ms), 3),
        "search_runs_p90_ms": round(p90, 3),
        "search_runs_result_count": len(aucs),
        "search_runs_first_auc": aucs[0] if aucs else None,
        "populate_s": round(populate_s, 3),
    }


def run_benchmarks(args: argparse.Namespace) -> dict[str, Any]:
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "mlflow.db"
    if db_path.exists():
        raise SystemExit(f"{db_path} already exists; pass a fresh --workdir")
    artifact_root = workdir / "artifacts"

    log("timing interpreter startup and `import mlflow` (3 subprocesses each)")
    python_startup_s = median_subprocess_s("pass")
    import_mlflow_s = median_subprocess_s("import mlflow")

    log(f"creating tracking store sqlite:///{db_path} (untimed)")
    start = time.perf_counter()
    mlflow.set_tracking_uri(f"sqlite:///{db_path}")
    client = MlflowClient()
    client.search_experiments()  # runs MLflow's migrations
    store_init_s = time.perf_counter() - start

    log(f"log_metric x {args.calls}")
    log_metric_rate = bench_log_metric(client, artifact_root, args.calls)
    log(f"log_batch of {args.batch_values} values")
    log_batch_rate = bench_log_batch(client, artifact_root, args.batch_values)
    log(f"search_runs over {args.runs} runs (ANALYZE: {args.analyze})")
    search = bench_search(client, db_path, artifact_root, args.runs, args.search_repeats, args.analyze)

    return {
        "mlflow_version": mlflow.__version__,
        "runs": args.runs,
        "calls": args.calls,
        "batch_values": args.batch_values,
        "log_metric_calls_per_s": round(log_metric_rate, 1),
        "log_batch_values_per_s": round(log_batch_rate, 1),
        **search,
        "import_mlflow_s": round(import_mlflow_s, 4),
        "python_startup_s": round(python_startup_s, 4),
        "store_init_s": round(store_init_s, 3),
        "sqlite_version": sqlite3.sqlite_version,
        "sqlite_analyzed": args.analyze,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="fresh directory for the SQLite store")
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the searched experiment")
    parser.add_argument("--calls", type=int, default=2000, help="mlflow.log_metric calls")
    parser.add_argument("--batch-values", type=int, default=100_000, help="metric values sent via log_batch")
    parser.add_argument("--search-repeats", type=int, default=20, help="timed search_runs calls")
    parser.add_argument(
        "--analyze", action="store_true", help="run SQLite ANALYZE after populating (MLflow never does)"
    )
    args = parser.parse_args()
    for name in ("runs", "calls", "batch_values", "search_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    # Anything MLflow prints goes to stderr; stdout carries only the JSON result.
    with contextlib.redirect_stdout(sys.stderr):
        result = run_benchmarks(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
