"""The online server against bodies that decode to far more than they weigh, and against
feedback that used to poison the prediction log."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopline.artifacts import BlobStore
from loopline.artifacts.tables import TableArea
from loopline.core.traffic import TrafficPolicy
from loopline.predictions.log import FEEDBACK, PREDICTIONS, PredictionLog, RecordChunk, label_text
from loopline.predictions.reader import LABELS, LogReader
from loopline.predictions.reports import deployment_report
from loopline.predictions.window import read_window
from loopline.serving.http import HttpError
from loopline.serving.payloads import PARQUET, Limits, parse
from loopline.serving.runtime import ServingOptions
from loopline.specs.monitor import WindowSpec
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.integration.serving_helpers import (
    RunningServer,
    cancer_data,
    register_cancer_models,
    running_server,
)

PREDICT = "/v1/deployments/cancer/predict"
FEEDBACK_ROUTE = "/v1/deployments/cancer/feedback"


@pytest.fixture
def backends(store: MetadataStore, blobs: BlobStore) -> Backends:
    return Backends(store, blobs)


@pytest.fixture
def server(tracker: Tracker, backends: Backends) -> Iterator[RunningServer]:
    register_cancer_models(tracker)
    backends.services(local_owner()).deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    with running_server(backends, ("cancer",)) as running:
        yield running


def _parquet(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue()


def _bomb(rows: int) -> bytes:
    """A few kilobytes of Parquet that decode to `rows` rows of the model's columns."""
    features, _ = cancer_data()
    return _parquet(pd.DataFrame({c: np.zeros(rows) for c in features.columns}))


def test_a_parquet_bomb_is_refused_from_its_footer_before_any_decoding() -> None:
    bomb = _bomb(1_000_000)
    assert len(bomb) < 200_000  # small on the wire
    with pytest.raises(HttpError) as refused:
        parse(PARQUET[0], bomb, Limits(max_rows=100_000))
    assert refused.value.status == 413 and "1,000,000 rows" in refused.value.message
    # The footer alone decides: with its data pages garbled the answer is the same 413, where
    # decoding them would have failed with a 400.
    footer = int.from_bytes(bomb[-8:-4], "little") + 8  # the metadata, its length and PAR1
    garbled = b"PAR1" + bytes(len(bomb) - footer - 4) + bomb[-footer:]
    with pytest.raises(HttpError) as again:
        parse(PARQUET[0], garbled, Limits(max_rows=100_000))
    assert again.value.status == 413


def test_bodies_over_the_row_or_column_limit_get_413_with_a_short_answer(server: RunningServer) -> None:
    features, _ = cancer_data()
    wide = ",".join(f"c{i}" for i in range(350_000)) + "\n" + ",".join("1" for _ in range(350_000)) + "\n"
    long_records = {"records": [features.iloc[0].to_dict()] * 100_001}
    with server.client() as client:
        answer = client.post(PREDICT, content=wide.encode(), headers={"content-type": "text/csv"})
        assert answer.status_code == 413 and "350,000 columns" in answer.json()["error"]["message"]
        assert len(answer.content) < 1_000
        bomb = client.post(PREDICT, content=_bomb(2_000_000), headers={"content-type": PARQUET[0]})
        assert bomb.status_code == 413 and "2,000,000 rows" in bomb.json()["error"]["message"]
        assert client.post(PREDICT, json=long_records).status_code == 413
        assert client.get("/health").status_code == 200
        assert client.post(PREDICT, json={"records": _records(features, 3)}).status_code == 200


def _records(features: pd.DataFrame, rows: int) -> list[dict[str, float]]:
    return list(features.head(rows).to_dict("records"))


def test_feedback_of_mixed_label_types_loses_no_prediction(server: RunningServer, backends: Backends) -> None:
    features, _ = cancer_data()
    with server.client() as client:
        ids = [
            client.post(PREDICT, json={"records": _records(features, 1)}).json()["request_id"]
            for _ in range(90)
        ]
        labels = [{"request_id": ids[0], "label": 1}, {"request_id": ids[1], "label": "yes"},
                  {"request_id": ids[2], "label": 0.0}, {"request_id": ids[3], "label": True}]  # fmt: skip
        assert client.post(FEEDBACK_ROUTE, json={"labels": labels}).status_code == 202
        later = [{"request_id": ids[4], "label": 2.5}]  # another type in a later flush
        time.sleep(0.5)
        assert client.post(FEEDBACK_ROUTE, json={"labels": later}).status_code == 202
        refused = client.post(FEEDBACK_ROUTE, json={"labels": [{"request_id": ids[5], "label": [1]}]})
        assert refused.status_code == 422 and "labels[0].label" in refused.json()["error"]["message"]
        time.sleep(0.6)  # flushed every 0.2 s
        assert client.get("/ready").json()["log_failing"] is False
    con = LogReader(backends.tables, "cancer").connect()
    assert con.execute(f"SELECT count(*) FROM {PREDICTIONS}").fetchone()[0] == 90
    stored = dict(con.execute(f"SELECT request_id, label FROM {LABELS}").fetchall())
    assert [stored[i] for i in ids[:5]] == ["1", "yes", "0", "True", "2.5"]


def test_a_partition_that_cannot_be_written_keeps_its_rows_and_the_others_land(
    server: RunningServer, backends: Backends
) -> None:
    features, _ = cancer_data()
    blocker = Path(backends.tables.folder(FEEDBACK, [("deployment", "cancer")]))
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way")  # the feedback partition's folder cannot be made
    with server.client() as client:
        ids = [
            client.post(PREDICT, json={"records": _records(features, 1)}).json()["request_id"]
            for _ in range(5)
        ]
        client.post(FEEDBACK_ROUTE, json={"labels": [{"request_id": i, "label": 1} for i in ids]})
        time.sleep(0.6)
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["log_failing"] is True
        con = LogReader(backends.tables, "cancer").connect()
        assert con.execute(f"SELECT count(*) FROM {PREDICTIONS}").fetchone()[0] == 5  # these landed
        blocker.unlink()
        time.sleep(0.6)
        assert client.get("/ready").status_code == 200
    con = LogReader(backends.tables, "cancer").connect()
    assert con.execute(f"SELECT count(*) FROM {LABELS}").fetchone()[0] == 5  # kept, then written


def test_the_log_buffer_is_bounded_by_the_rows_it_takes_in(tmp_path: Path) -> None:
    async def fill() -> int:
        log = PredictionLog(TableArea(str(tmp_path)), max_rows=10, flush_rows=1_000, flush_interval=60)
        log.start()
        records = [{"request_id": "r", "row": 0, "label": "1", "at_ms": 0}] * 8
        await log.append(RecordChunk(FEEDBACK, "d", 0, records))
        await log.append(RecordChunk(FEEDBACK, "d", 0, records))  # 16 > 10: waits for a flush
        written = log.written_rows
        await log.close()
        return written

    assert asyncio.run(fill()) == 8


@pytest.mark.parametrize(
    ("value", "text"), [(1, "1"), (1.0, "1"), (2.5, "2.5"), ("yes", "yes"), (True, "True"), (-3, "-3")]
)
def test_labels_are_stored_as_text_spelled_one_way(value: object, text: str) -> None:
    assert label_text(value) == text


@pytest.mark.parametrize("value", [None, [1], {"a": 1}, float("nan"), float("inf")])
def test_what_is_no_label_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="a label is"):
        label_text(value)


def test_unknown_deployment_names_do_not_grow_the_metrics(server: RunningServer) -> None:
    with server.client() as client:
        for i in range(50):
            assert (
                client.post(f"/v1/deployments/nobody-{i}/predict", json={"records": [{}]}).status_code == 404
            )
        metrics = client.get("/metrics").text
    assert "nobody-" not in metrics
    assert 'loopline_request_errors_total{deployment="",status="404"} 50.0' in metrics


def test_labels_of_any_stored_type_are_read_back(tmp_path: Path) -> None:
    """Files written before labels were text hold numbers; a window and a report read them
    beside text labels instead of failing on the day's files for good."""
    tables = TableArea(str(tmp_path))
    partition = [("deployment", "d"), ("date", "2026-01-01")]
    at = 1_767_225_600_000
    ids = [f"r{i}" for i in range(6)]
    tables.append(PREDICTIONS, partition, pa.table({
        "request_id": ids, "row": pa.array([0] * 6, pa.int32()), "at_ms": [at + i for i in range(6)],
        "arm": ["main"] * 6, "model": ["m"] * 6, "version": pa.array([1] * 6, pa.int32()),
        "latency_ms": [1.0] * 6, "prediction": [1, 0, 1, 1, 0, 1], "input.x": [0.5] * 6,
        "proba.0": [0.2] * 6, "proba.1": [0.8] * 6,
    }))  # fmt: skip
    for labels in (pa.array([1, 0], pa.int64()), pa.array(["1", "yes"]), pa.array([1.0, 0.0])):
        start = len(tables.files(FEEDBACK))
        rows = ids[2 * start : 2 * start + 2]
        tables.append(FEEDBACK, partition, pa.table({
            "request_id": rows, "row": pa.array([0, 0], pa.int32()), "label": labels, "at_ms": [at + 10] * 2,
        }))  # fmt: skip
    window = read_window(tables, "d", WindowSpec(rows=100), at + 1_000)
    assert window.rows["label"].tolist() == ["1", "0", "1", "yes", "1.0", "0.0"]
    report = deployment_report(tables, "d", TrafficPolicy.single("models:/m/1"))
    assert report.arms[0].labelled == 6 and report.arms[0].accuracy == pytest.approx(3 / 6)


def test_duplicate_column_names_are_bad_input(server: RunningServer) -> None:
    features, _ = cancer_data()
    row = features.iloc[0]
    columns = [*features.columns, features.columns[0]]
    with server.client() as client:
        answer = client.post(PREDICT, json={"columns": columns, "data": [[*row.tolist(), row.iloc[0]]]})
        assert answer.status_code == 422 and "more than once" in answer.json()["error"]["message"]
        twice = pa.table([pa.array([1.0])] * 2, names=["mean radius", "mean radius"])
        sink = io.BytesIO()
        pq.write_table(twice, sink)
        parquet = client.post(PREDICT, content=sink.getvalue(), headers={"content-type": PARQUET[0]})
        assert parquet.status_code == 422 and "more than once" in parquet.json()["error"]["message"]
        assert client.get("/health").status_code == 200


class Unanswerable:
    """A model whose predictions are no JSON value: a bug in the model, met after scoring."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), 1 + 2j)


def test_an_unexpected_error_is_a_500_on_a_connection_that_stays_open(
    tracker: Tracker, backends: Backends
) -> None:
    with tracker.start_run("odd") as run:
        run.log_model(Unanswerable(), "odd")  # no example: its output has no signature type
    backends.services(local_owner()).deployments.create("odd", TrafficPolicy.single("models:/odd/1"))
    with running_server(backends, ("odd",), ServingOptions(refresh_interval=0.2, trust=True)) as running:
        address = urlparse(running.url)
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
        connection.request(
            "POST", "/v1/deployments/odd/predict", json.dumps({"records": [{"x": 1.0}]}),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        failed = connection.getresponse()
        assert failed.status == 500 and "internal error" in json.loads(failed.read())["error"]["message"]
        kept = connection.sock
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200 and connection.sock is kept
        connection.close()
