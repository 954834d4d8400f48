"""Online features for benchmarks/features.py: lookup latency against Feast's
`get_online_features` (in process, 10 features, SQLite and Redis), and the peak RSS of
materialization as the rows grow.

Each side runs in its own process; the two never run at once.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

FEATURES = tuple(f"f{i}" for i in range(10))
ONLINE_ENTITIES = 100_000
LOOPLINE_REDIS = "redis://127.0.0.1:6379/13"
MATERIALIZE_ROWS = (1_000_000, 10_000_000)
ROWS_PER_ENTITY = 10


def generate_online(workdir: Path, entities: int, rows_per_entity: int = 1, seed: int = 3) -> Path:
    """online.parquet: `rows_per_entity` rows of 10 float features per entity over a year."""
    import duckdb

    path = workdir / "online.parquet"
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed / 100})")
    columns = ", ".join(f"random() AS {f}" for f in FEATURES)
    con.execute(
        f"""COPY (SELECT (i % {entities})::BIGINT AS customer_id,
                         to_timestamp(1700000000 + (random() * 31536000)::BIGINT) AS event_ts, {columns}
                  FROM range({entities * rows_per_entity}) t(i))
            TO '{path}' (FORMAT PARQUET, ROW_GROUP_SIZE 1000000)"""
    )
    con.close()
    return path


def _configure(workdir: Path, online_store: str | None) -> None:
    import loopline as ll
    from loopline.core.features import Entity, Feature, FeatureView
    from loopline.wiring.settings import Settings

    settings = Settings(
        home=workdir,  # the default online store lives in the home folder: this run's own
        store_uri=f"sqlite:///{workdir / 'loopline.db'}",
        artifacts_uri=str(workdir / "artifacts"),
        online_store=online_store,
    )
    ll.configure(settings=settings)
    view = FeatureView(
        "stats", ("customer",), str(workdir / "online.parquet"), "event_ts",
        tuple(Feature(f, "float64") for f in FEATURES),
    )  # fmt: skip
    ll.features.apply(Entity("customer", ("customer_id",)), view)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {q: ordered[int(len(ordered) * p)] * 1e3 for q, p in (("p50", 0.50), ("p99", 0.99))}


def loopline_online(workdir: Path, kind: str) -> dict[str, Any]:
    """Child process: materialize, then time `ll.features.get_online` for 1 and 100 entities."""
    import loopline as ll

    if kind == "redis":
        import redis

        redis.Redis.from_url(LOOPLINE_REDIS).flushdb()  # db 13 is this benchmark's own
    _configure(workdir, LOOPLINE_REDIS if kind == "redis" else None)
    start = time.perf_counter()
    done = ll.features.materialize("stats")
    found: dict[str, Any] = {"materialize_s": time.perf_counter() - start}
    assert done.keys_written == ONLINE_ENTITIES, done
    features = [f"stats:{f}" for f in FEATURES]
    rng = random.Random(0)
    for size, calls in ((1, 3000), (100, 1000)):
        samples = []
        for i in range(calls + 200):
            keys = [rng.randrange(ONLINE_ENTITIES) for _ in range(size)]
            began = time.perf_counter()
            result = ll.features.get_online({"customer_id": keys}, features)
            if i >= 200:  # after a warm-up, as for Feast
                samples.append(time.perf_counter() - began)
        assert len(result["f0"]) == size and result["f0"][0] is not None
        found[str(size)] = _percentiles(samples)
    return found


def loopline_materialize(workdir: Path) -> dict[str, Any]:
    """Child process: one materialization of every row of online.parquet into SQLite."""
    import loopline as ll

    _configure(workdir, None)
    start = time.perf_counter()
    done = ll.features.materialize("stats")
    assert done.keys_written > 0, done
    return {"seconds": time.perf_counter() - start, "keys": done.keys_written}


def main_online(run_measured: Any, feast_python: Path | None) -> list[str]:
    """Lookup latency, loopline then Feast, on SQLite and on Redis."""
    import tempfile

    lines = ["online lookup, 10 features, 100,000 entities, p50 / p99 in ms"]
    with tempfile.TemporaryDirectory(prefix="loopline-online-") as tmp:
        workdir = Path(tmp)
        generate_online(workdir, ONLINE_ENTITIES)
        for kind in ("sqlite", "redis"):
            child = [sys.executable, "-m", "benchmarks.features", "--child", f"online-{kind}", tmp]
            ours = run_measured(child)
            theirs = None
            if feast_python is not None:
                script = str(Path(__file__).parent / "peers" / "feast_online.py")
                theirs = run_measured([str(feast_python), script, tmp, kind, str(ONLINE_ENTITIES)])
            for size in ("1", "100"):
                line = (
                    f"{kind:6} {size:>3} entit{'y  ' if size == '1' else 'ies'} | loopline "
                    f"{ours[size]['p50']:6.3f} / {ours[size]['p99']:6.3f}"
                )
                if theirs is not None:
                    ratio = theirs[size]["p99"] / ours[size]["p99"]
                    peer = theirs[size]
                    line += f" | Feast {theirs['version']} {peer['p50']:6.3f} / {peer['p99']:6.3f}"
                    line += f" | p99 {ratio:5.1f}x lower"
                print(line, flush=True)
                lines.append(line)
            line = f"{kind:6} materialize 100,000 keys | loopline {ours['materialize_s']:5.1f} s"
            if theirs is not None:
                line += f" | Feast {theirs['materialize_s']:5.1f} s"
            print(line, flush=True)
            lines.append(line)
    return lines


def main_materialize(run_measured: Any, quick: bool) -> list[str]:
    """Peak RSS of one materialization at 1M and at 10M rows (10 rows per entity)."""
    import tempfile

    lines = []
    for rows in MATERIALIZE_ROWS:
        rows = rows // 10 if quick else rows
        with tempfile.TemporaryDirectory(prefix="loopline-materialize-") as tmp:
            generate_online(Path(tmp), rows // ROWS_PER_ENTITY, ROWS_PER_ENTITY)
            ours = run_measured([sys.executable, "-m", "benchmarks.features", "--child", "materialize", tmp])
            line = (
                f"materialize {rows:>11,} rows -> {ours['keys']:>9,} keys (SQLite) | "
                f"{ours['seconds']:6.1f} s, peak RSS {ours['peak_rss_mb']:6,.0f} MiB"
            )
            print(line, flush=True)
            lines.append(line)
    return lines
