"""Point-in-time training sets at two shapes: loopline's retrieval (DuckDB: a running arg-max
over visible time, then ASOF joins) against Feast's file offline store, same data, same run.

    .venv/bin/python -m benchmarks.features [--part historical|online|materialize|all]
        [--shape shallow|deep|both] [--quick] [--no-feast]

Historical retrieval (the default part):

* shallow: 10,000,000 feature rows and 1,000,000 entity rows, 100 rows per entity
  (100,000 entities);
* deep: 2,000,000 feature rows and 20,000 rows per entity (100 entities), 1,000 entity
  rows.

Feature rows carry an event time, a created time (10% of them backfilled: written up to
three days after their event time) and 4 float features. Entity rows ask at random times
over the same span. Each side runs in its own process, one at a time; wall time and the
process's peak RSS (wait4) are reported, and both results are compared value by value (the
first 100,000 rows) where Feast ran. Feast runs in its own virtualenv
(benchmarks/.feast-venv, made on first use from peers/feast-requirements.txt); Feast's
point-in-time join ignores the created time when choosing a row (it only breaks ties with
it), so rows whose answer depends on a backfill are left out of the comparison.

Online (`--part online`, benchmarks/features_online.py): lookups of 1 and 100 entities, 10
features, through `ll.features.get_online` and Feast's `get_online_features`, on SQLite and
Redis. Materialization (`--part materialize`): peak RSS at 1M and at 10M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FEAST_VENV = HERE / ".feast-venv"
FEAST_PYTHON = FEAST_VENV / "bin" / "python"
FEAST_REQUIREMENTS = HERE / "peers" / "feast-requirements.txt"
# (feature rows, rows per entity, entity rows). Deep: 1,000 entity rows, as Feast's join holds
# every (entity row, feature row of its entity) pair: 1,000 x 20,000 = 20M pairs (3 GiB).
SHAPES = {"shallow": (10_000_000, 100, 1_000_000), "deep": (2_000_000, 20_000, 1_000)}
PEER_MEMORY_LIMIT = 20 << 30  # Feast may run out of memory: then it fails, not the machine
FEATURES = ("f0", "f1", "f2", "f3")
SPAN_S = 365 * 86_400
START_S = 1_700_000_000


def generate(workdir: Path, feature_rows: int, per_entity: int, entity_rows: int, seed: int = 7) -> None:
    """features.parquet and entities.parquet, written in chunks by DuckDB (out of core)."""
    import duckdb

    entities = feature_rows // per_entity
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed / 100})")
    columns = ", ".join(f"random() AS {f}" for f in FEATURES)
    backfill = "CASE WHEN random() < 0.1 THEN (random() * 3 * 86400)::BIGINT ELSE 0 END"
    con.execute(
        f"""COPY (
            SELECT customer_id, event_ts, event_ts + to_seconds(delay) AS created_ts, {", ".join(FEATURES)}
            FROM (SELECT (i % {entities})::BIGINT AS customer_id,
                         to_timestamp({START_S} + (random() * {SPAN_S})::BIGINT) AS event_ts,
                         {backfill} AS delay, {columns}
                  FROM range({feature_rows}) t(i))
        ) TO '{workdir / "features.parquet"}' (FORMAT PARQUET, ROW_GROUP_SIZE 1000000)"""
    )
    con.execute(
        f"""COPY (
            SELECT (random() * {entities})::BIGINT % {entities} AS customer_id,
                   to_timestamp({START_S} + (random() * {SPAN_S})::BIGINT) AS event_timestamp
            FROM range({entity_rows})
        ) TO '{workdir / "entities.parquet"}' (FORMAT PARQUET)"""
    )
    con.close()


def loopline_side(workdir: Path) -> None:
    """Child process: the retrieval through loopline's feature service, into result.parquet."""
    import loopline as ll
    from loopline.core.features import Entity, Feature, FeatureView

    ll.configure(store_uri=f"sqlite:///{workdir / 'loopline.db'}", artifacts_uri=str(workdir / "artifacts"))
    view = FeatureView(
        "stats", ("customer",), str(workdir / "features.parquet"), "event_ts",
        tuple(Feature(f, "float64") for f in FEATURES), created_time="created_ts",
    )  # fmt: skip
    ll.features.apply(Entity("customer", ("customer_id",)), view)
    start = time.perf_counter()
    ll.features.write_historical(
        workdir / "entities.parquet", [f"stats:{f}" for f in FEATURES], workdir / "loopline.parquet"
    )
    print(json.dumps({"seconds": time.perf_counter() - start}))


def run_measured(command: list[str], memory_limit: int | None = None) -> dict[str, Any]:
    """A child's JSON result (its last line), its wall time and its peak RSS in MiB."""
    import resource

    def limit() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    print(f"$ {' '.join(command)}", file=sys.stderr)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, preexec_fn=limit)
        _, status, usage = os.wait4(process.pid, 0)
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[0]} failed:\n{text[-2000:]}")
    result: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return {**result, "wall_s": time.perf_counter() - start, "peak_rss_mb": usage.ru_maxrss / 1024}


def ensure_feast_venv() -> None:
    stamp = FEAST_VENV / "requirements.installed"
    if stamp.exists() and stamp.read_text() == FEAST_REQUIREMENTS.read_text():
        return
    if not FEAST_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)
    pip = [str(FEAST_PYTHON), "-m", "pip", "install", "--quiet", "-r", str(FEAST_REQUIREMENTS)]
    subprocess.run(pip, check=True)
    stamp.write_text(FEAST_REQUIREMENTS.read_text())


def compare(workdir: Path, rows: int = 100_000) -> dict[str, Any]:
    """Both results side by side on loopline's first `rows` rows (Feast keeps no row order:
    joined back by key and time): how many differ, and how many of those Feast's answer does
    not explain by a value written after the row's time (which loopline must not use)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    mine, theirs, source = (
        workdir / name for name in ("loopline.parquet", "feast.parquet", "features.parquet")
    )
    found = con.execute(
        f"""
        WITH ours AS (SELECT DISTINCT customer_id, event_timestamp, f0
                      FROM read_parquet('{mine}') LIMIT {rows}),
             peer AS (SELECT DISTINCT customer_id, CAST(event_timestamp AS TIMESTAMPTZ) AS event_timestamp,
                             f0 AS peer_f0 FROM read_parquet('{theirs}')),
             differ AS (SELECT * FROM ours JOIN peer USING (customer_id, event_timestamp)
                        WHERE f0 IS DISTINCT FROM peer_f0)
        SELECT (SELECT count(*) FROM ours JOIN peer USING (customer_id, event_timestamp)),
               (SELECT count(*) FROM differ),
               (SELECT count(*) FROM differ d WHERE NOT EXISTS (
                    SELECT 1 FROM read_parquet('{source}') s
                    WHERE s.customer_id = d.customer_id AND s.f0 = d.peer_f0
                      AND s.created_ts > d.event_timestamp))
        """
    ).fetchone()
    assert found is not None
    return {"compared": found[0], "different": found[1], "unexplained": found[2]}


def main() -> None:
    from benchmarks import features_online

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ["historical", "online", "materialize", "all"]
    parser.add_argument("--part", choices=parts, default="historical")
    parser.add_argument("--shape", choices=["shallow", "deep", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="a tenth of each shape")
    parser.add_argument("--no-feast", action="store_true", help="loopline alone")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, workdir = args.child[0], Path(args.child[1])
        if kind == "loopline":
            loopline_side(workdir)
        elif kind == "materialize":
            print(json.dumps(features_online.loopline_materialize(workdir)))
        else:
            print(json.dumps(features_online.loopline_online(workdir, kind.removeprefix("online-"))))
        return
    if not args.no_feast:
        ensure_feast_venv()
    lines = []
    if args.part in ("historical", "all"):
        lines += historical(args)
    if args.part in ("online", "all"):
        lines += features_online.main_online(run_measured, None if args.no_feast else FEAST_PYTHON)
    if args.part in ("materialize", "all"):
        lines += features_online.main_materialize(run_measured, args.quick)
    print("\n".join(lines))


def historical(args: argparse.Namespace) -> list[str]:
    """Both shapes (or one), loopline then Feast; one line each."""
    shapes = ["shallow", "deep"] if args.shape == "both" else [args.shape]
    lines = []
    for shape in shapes:
        feature_rows, per_entity, entity_rows = SHAPES[shape]
        if args.quick:
            feature_rows, entity_rows = feature_rows // 10, entity_rows // 10
        with tempfile.TemporaryDirectory(prefix="loopline-features-") as tmp:
            workdir = Path(tmp)
            generate(workdir, feature_rows, per_entity, entity_rows)
            ours = run_measured([sys.executable, "-m", "benchmarks.features", "--child", "loopline", tmp])
            line = (
                f"{shape:8} {feature_rows:>11,} feature rows, {per_entity:>6,}/entity, {entity_rows:>9,} "
                f"entity rows | loopline {ours['seconds']:7.1f} s, {ours['peak_rss_mb']:6,.0f} MiB"
            )
            if not args.no_feast:
                script = str(HERE / "peers" / "feast_historical.py")
                try:
                    theirs = run_measured([str(FEAST_PYTHON), script, tmp], PEER_MEMORY_LIMIT)
                except RuntimeError:
                    line += f" | Feast failed within {PEER_MEMORY_LIMIT >> 30} GiB (its output above)"
                    print(line, flush=True)
                    lines.append(line)
                    continue
                same = compare(workdir)
                speed = theirs["seconds"] / ours["seconds"]
                memory = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
                feast = (
                    f"Feast {theirs['version']} {theirs['seconds']:7.1f} s, {theirs['peak_rss_mb']:6,.0f} MiB"
                )
                explained = same["different"] - same["unexplained"]
                differ = (
                    f"{same['different']:,} of {same['compared']:,} differ, {explained:,} by a later write"
                )
                line += f" | {feast} | {speed:5.1f}x faster, RSS {memory:.2f} of Feast's | {differ}"
            print(line, flush=True)
            lines.append(line)
    return lines


if __name__ == "__main__":
    main()
