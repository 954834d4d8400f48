"""The prediction log's buffer stays bounded: a full buffer makes writers wait, it never
drops rows, and everything reaches Parquet."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from loopline.artifacts.tables import TableArea
from loopline.predictions.log import PredictionChunk, PredictionLog


def _chunk(i: int) -> PredictionChunk:
    return PredictionChunk(
        request_id=f"r{i}",
        at_ms=time.time_ns() // 1_000_000,
        deployment="d",
        arm="main",
        model="m",
        version=1,
        latency_ms=1.0,
        columns=["a", "b"],
        inputs=np.array([[float(i), 2.0]]),
        predictions=np.array([i % 2]),
        proba=np.array([[0.4, 0.6]]),
        classes=[0, 1],
    )


def test_a_full_buffer_makes_writers_wait_and_loses_nothing(tmp_path: Path) -> None:
    area = TableArea(str(tmp_path))
    log = PredictionLog(area, max_rows=50, flush_rows=10_000, flush_interval=0.05)
    high_water = 0

    async def scenario() -> None:
        nonlocal high_water
        log.start()

        async def producer(start: int) -> None:
            nonlocal high_water
            for i in range(start, start + 500):
                await log.append(_chunk(i))
                high_water = max(high_water, log._rows)

        await asyncio.gather(*(producer(k * 500) for k in range(4)))
        await log.close()

    asyncio.run(scenario())
    assert high_water <= 50  # the bound holds under concurrent writers
    table = area.read("predictions", [("deployment", "d")]).to_pandas()
    assert sorted(table["request_id"]) == sorted(f"r{i}" for i in range(2000))
    assert (table["input.a"].astype(int).map(lambda i: f"r{i}") == table["request_id"]).all()
    assert log.written_rows == 2000 and log.errors == []


def test_files_whose_column_types_differ_are_read_under_one_widened_schema(tmp_path: Path) -> None:
    """Two model versions can log one input as int64 and as double: both must read back."""
    import pyarrow as pa

    area = TableArea(str(tmp_path / "tables"))
    partition = [("deployment", "churn"), ("date", "2026-11-22")]
    area.append("predictions", partition, pa.table({"input.c": pa.array([1, 2], pa.int64())}))
    area.append("predictions", partition, pa.table({"input.c": pa.array([4.5]), "input.d": ["x"]}))
    table = area.read("predictions", [("deployment", "churn")])
    assert table.schema.field("input.c").type == pa.float64()
    assert sorted(table.column("input.c").to_pylist()) == [1.0, 2.0, 4.5]
    assert table.column("input.d").null_count == 2
