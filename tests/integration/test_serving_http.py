"""The online server over real HTTP on 127.0.0.1: predictions, every kind of bad input,
health, readiness, metrics, feedback and the prediction log."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from loopline.artifacts import BlobStore
from loopline.artifacts.tables import TableArea
from loopline.core.errors import InvalidInput
from loopline.core.traffic import TrafficPolicy
from loopline.predictions.reports import deployment_report
from loopline.serving.batch import score_file
from loopline.serving.deployments import DeploymentService
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import free_port, wait_until
from tests.integration.serving_helpers import (
    RunningServer,
    cancer_data,
    register_cancer_models,
    running_server,
)


@pytest.fixture
def backends(store: MetadataStore, blobs: BlobStore) -> Backends:
    return Backends(store, blobs)


@pytest.fixture
def deployments(backends: Backends) -> DeploymentService:
    return backends.services(local_owner()).deployments


@pytest.fixture
def server(tracker: Tracker, deployments: DeploymentService, backends: Backends) -> Iterator[RunningServer]:
    register_cancer_models(tracker)
    deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    with running_server(backends, ("cancer",)) as running:
        yield running


PREDICT = "/v1/deployments/cancer/predict"


def _records(rows: int = 1) -> list[dict[str, float]]:
    features, _ = cancer_data()
    return features.head(rows).to_dict("records")


def test_json_records_and_columns_are_predicted(server: RunningServer) -> None:
    features, _ = cancer_data()
    with server.client() as client:
        answer = client.post(PREDICT, json={"records": _records(3)}, headers={"x-request-id": "req-1"})
        assert answer.status_code == 200
        body = answer.json()
        assert body["request_id"] == "req-1"
        assert (body["deployment"], body["arm"], body["model"], body["version"]) == (
            "cancer",
            "main",
            "models:/cancer/1",
            1,
        )
        assert body["predictions"] == [0, 0, 0] and body["classes"] == [0, 1]
        assert len(body["probabilities"]) == 3 and abs(sum(body["probabilities"][0]) - 1) < 1e-9
        columnar = {
            "columns": list(features.columns)[::-1],
            "data": features.head(3)[features.columns[::-1]].values.tolist(),
        }
        assert client.post(PREDICT, json=columnar).json()["predictions"] == body["predictions"]


def test_csv_and_parquet_bodies_are_predicted(server: RunningServer) -> None:
    features, _ = cancer_data()
    head = features.head(5)
    parquet = io.BytesIO()
    head.to_parquet(parquet)
    with server.client() as client:
        as_csv = client.post(PREDICT, content=head.to_csv(index=False), headers={"content-type": "text/csv"})
        as_parquet = client.post(
            PREDICT, content=parquet.getvalue(), headers={"content-type": "application/vnd.apache.parquet"}
        )
    assert as_csv.status_code == as_parquet.status_code == 200
    assert (
        as_csv.json()["predictions"] == as_parquet.json()["predictions"]
        and len(as_csv.json()["predictions"]) == 5
    )


def test_bad_input_gets_a_clear_4xx_never_a_500(server: RunningServer, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (open, (str(marker), "w"))

    wrong_type = _records(1)
    wrong_type[0]["mean radius"] = "large"
    numeric_text = _records(1)
    numeric_text[0]["mean radius"] = "17.99"  # numpy would read it; the signature says double
    missing = [{k: v for k, v in r.items() if k != "mean area"} for r in _records(1)]
    cases = [
        (
            {"content": b'{"records": [', "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        (
            {"content": pickle.dumps(Exploit()), "headers": {"content-type": "application/python-pickle"}},
            415,
            "not accepted",
        ),
        ({"json": {"records": wrong_type}}, 422, "'mean radius' is string where the model expects double"),
        ({"json": {"records": numeric_text}}, 422, "'mean radius' is string where the model expects double"),
        ({"json": {"records": missing}}, 422, "missing columns ['mean area']"),
        ({"json": {"records": []}}, 422, "no rows"),
        ({"json": {"rows": []}}, 422, 'send {"records"'),
        ({"json": {"columns": ["a"], "data": [[1, 2]]}}, 422, "rows of 1 values"),
        (
            {"content": b"x" * (10 * 1024 * 1024), "headers": {"content-type": "application/json"}},
            413,
            "limit",
        ),
        ({"content": b"a,b\n1,2\n", "headers": {"content-type": "text/csv"}}, 422, "missing columns"),
        (
            {"content": b"PAR1garbage", "headers": {"content-type": "application/vnd.apache.parquet"}},
            400,
            "Parquet",
        ),
    ]
    with server.client() as client:
        for request, status, message in cases:
            answer = client.post(PREDICT, **request)  # type: ignore[arg-type]
            assert answer.status_code == status, (request.get("json"), answer.text[:300])
            assert message in answer.json()["error"]["message"], answer.text[:300]
            assert set(answer.json()["error"]) == {"code", "message", "details"}  # the team server's shape
        unknown = client.post("/v1/deployments/nope/predict", json={"records": _records()})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        assert unknown.json()["error"]["details"] == {"served": ["cancer"]}
        assert client.get(PREDICT).status_code == 405
        assert client.get("/nowhere").status_code == 404
    assert not marker.exists()  # the pickle was never unpickled


def test_health_readiness_and_metrics(server: RunningServer) -> None:
    with server.client() as client:
        assert client.get("/health").json() == {"status": "alive"}
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        for _ in range(3):
            client.post(PREDICT, json={"records": _records(2)})
        client.post(PREDICT, json={"records": []})
        metrics = client.get("/metrics").text
        served = client.get("/v1/deployments").json()["deployments"]
    assert 'loopline_requests_total{arm="main",deployment="cancer",status="200",version="1"} 3.0' in metrics
    assert 'loopline_predicted_rows_total{arm="main",deployment="cancer",version="1"} 6.0' in metrics
    assert 'loopline_request_errors_total{deployment="cancer",status="422"} 1.0' in metrics
    assert (
        "loopline_request_latency_seconds_bucket" in metrics
        and "loopline_prediction_confidence_bucket" in metrics
    )
    assert 'loopline_batch_rows_count{deployment="cancer",version="1"} 3.0' in metrics
    assert served == [
        {
            "name": "cancer",
            "revision": 1,
            "policy": TrafficPolicy.single("models:/cancer/1").to_dict(),
            "arms": {"main": "models:/cancer/1"},
        }
    ]


def test_every_answer_and_feedback_reach_the_log(
    tracker: Tracker, deployments: DeploymentService, backends: Backends
) -> None:
    register_cancer_models(tracker)
    deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        ids = [client.post(PREDICT, json={"records": _records(2)}).json()["request_id"] for _ in range(5)]
        accepted = client.post(
            "/v1/deployments/cancer/feedback",
            json={
                "labels": [{"request_id": ids[0], "label": 0}, {"request_id": ids[1], "row": 1, "label": 1}]
            },
        )
        assert accepted.status_code == 202
        assert accepted.json() == {"accepted": 2, "matched": 2, "unmatched": []}  # still buffered
        wait_until(lambda: backends.tables.files("predictions"))
        later = client.post(
            "/v1/deployments/cancer/feedback",
            json={"labels": [{"request_id": ids[2], "label": 1}, {"request_id": "never-asked", "label": 0}]},
        )  # matched from the stored log; the unknown id is said
        assert later.json() == {"accepted": 2, "matched": 1, "unmatched": ["never-asked"]}
        stored = backends.tables.files("predictions")[0]
        with backends.tables.fs.open(stored.rsplit("/", 1)[0] + "/part-garbled.parquet", "wb") as garbled:
            garbled.write(b"not parquet")  # an unreadable file: its ids stay unmatched, nothing fails
        odd = client.post(
            "/v1/deployments/cancer/feedback", json={"labels": [{"request_id": "x", "label": 1}]}
        )
        assert odd.status_code == 202 and odd.json()["unmatched"] == ["x"]
        backends.tables.fs.rm(stored.rsplit("/", 1)[0] + "/part-garbled.parquet")
        refused = client.post("/v1/deployments/cancer/feedback", json={"labels": [{"label": 1}]})
        assert refused.status_code == 422 and "request_id" in refused.json()["error"]["message"]
    assert server.app.log.errors == []  # type: ignore[attr-defined]
    log = backends.tables.read("predictions", [("deployment", "cancer")]).to_pandas()
    assert sorted(set(log["request_id"])) == sorted(ids)
    assert len(log) == 10 and set(log["row"]) == {0, 1} and set(log["version"]) == {1}
    assert {"input.mean radius", "proba.0", "proba.1", "prediction", "latency_ms", "arm"} <= set(log.columns)
    labels = backends.tables.read("feedback", [("deployment", "cancer")]).to_pandas()
    assert sorted(zip(labels["request_id"], labels["row"], labels["label"], strict=True)) == sorted(
        [(ids[0], 0, "0"), (ids[1], 1, "1"), (ids[2], 0, "1"), ("never-asked", 0, "0"), ("x", 0, "1")]
    )
    assert all(
        pq.ParquetFile(backends.tables.fs.open(p)).metadata.num_rows > 0
        for p in backends.tables.files("predictions")
    )


def test_a_table_area_refuses_unsafe_partition_names(tmp_path: Path) -> None:
    area = TableArea(str(tmp_path))
    for bad in ("../x", "a/b", "", ".."):
        with pytest.raises(InvalidInput, match="cannot name"):
            area.folder("predictions", [("deployment", bad)])
    assert area.read("predictions").num_rows == 0


def test_the_body_limit_and_timeout_are_settings(
    tracker: Tracker, deployments: DeploymentService, backends: Backends
) -> None:
    from loopline.serving.app import HttpOptions

    register_cancer_models(tracker)
    deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    with running_server(backends, ("cancer",), http=HttpOptions(max_body_bytes=1000)) as server:
        answer = httpx.post(server.url + PREDICT, json={"records": _records(5)})
    assert answer.status_code == 413 and "1,000" in answer.json()["error"]["message"]


class Sleepy:
    """A model that takes longer than the server allows."""

    def predict(self, frame: pd.DataFrame) -> list[int]:
        import time

        time.sleep(1.5)
        return [0] * len(frame)


def test_a_slow_model_times_out_with_504_and_the_server_keeps_answering(
    tracker: Tracker, deployments: DeploymentService, backends: Backends
) -> None:
    from loopline.serving.app import HttpOptions
    from loopline.serving.runtime import ServingOptions

    register_cancer_models(tracker)
    with tracker.start_run("slow") as run:
        run.log_model(Sleepy(), "sleepy", input_example=pd.DataFrame({"x": [1.0]}))
    deployments.create("sleepy", TrafficPolicy.single("models:/sleepy/1"))
    deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    options = ServingOptions(refresh_interval=0.2, trust=True)
    with (
        running_server(
            backends, ("sleepy", "cancer"), serving=options, http=HttpOptions(timeout=0.5)
        ) as server,
        server.client() as client,
    ):
        slow = client.post("/v1/deployments/sleepy/predict", json={"records": [{"x": 1.0}]})
        fast = client.post(PREDICT, json={"records": _records()})
    assert slow.status_code == 504 and "within 0.5 s" in slow.json()["error"]["message"]
    assert fast.status_code == 200


@pytest.mark.parametrize(
    ("name", "classes"),
    [("text", ["no", "yes"]), ("boolean", [False, True]), ("numerals", ["0", "1"])],
)
def test_classifiers_with_any_kind_of_class_label_are_served_and_logged(
    tracker: Tracker,
    deployments: DeploymentService,
    backends: Backends,
    name: str,
    classes: list[object],
    tmp_path: Path,
) -> None:
    features, target = cancer_data()
    labels = np.array(classes)[target.to_numpy()]
    with tracker.start_run("labels") as run:
        model = LogisticRegression(max_iter=5000).fit(features, labels)
        run.log_model(model, name, input_example=features.head())
    deployments.create(name, TrafficPolicy.single(f"models:/{name}/1"))
    with running_server(backends, (name,)) as server, server.client() as client:
        answer = client.post(f"/v1/deployments/{name}/predict", json={"records": _records(3)})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predictions"] == list(model.predict(features.head(3)))
        assert body["classes"] == list(model.classes_)
        feedback = [{"request_id": body["request_id"], "label": body["predictions"][0]}]
        assert client.post(f"/v1/deployments/{name}/feedback", json={"labels": feedback}).status_code == 202
    assert server.app.log.errors == []  # type: ignore[attr-defined]
    log = backends.tables.read("predictions", [("deployment", name)]).to_pandas()
    assert [str(p) for p in log["prediction"]] == [str(p) for p in body["predictions"]]
    (arm,) = deployment_report(backends.tables, name, TrafficPolicy.single(f"models:/{name}/1")).arms
    assert (arm.labelled, arm.accuracy) == (1, 1.0)
    features.head(20).to_parquet(tmp_path / "rows.parquet")  # and batch scoring, to both formats
    for out in ("scored.parquet", "scored.csv"):
        score_file(backends.services(local_owner()).registry, f"models:/{name}/1", tmp_path / "rows.parquet",
                   tmp_path / out, progress=False)  # fmt: skip
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert [str(p) for p in scored["prediction"]] == [str(p) for p in model.predict(features.head(20))]


def test_a_value_the_model_refuses_is_a_422_with_its_reason(
    tracker: Tracker, deployments: DeploymentService, backends: Backends
) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"plan": ["basic", "pro", "basic", "pro"] * 10, "age": range(40)})
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="error"), ["plan"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, [0, 1, 0, 1] * 10)
    with tracker.start_run("categories") as run:
        run.log_model(model, "plans", input_example=frame.head())
    deployments.create("plans", TrafficPolicy.single("models:/plans/1"))
    with running_server(backends, ("plans",)) as server, server.client() as client:
        unseen = client.post("/v1/deployments/plans/predict", json={"records": [{"plan": "gold", "age": 30}]})
        assert unseen.status_code == 422 and "gold" in unseen.json()["error"]["message"]
        known = client.post("/v1/deployments/plans/predict", json={"records": [{"plan": "pro", "age": 30}]})
        assert known.status_code == 200


def test_mlflow_clients_score_through_invocations_unchanged(server: RunningServer) -> None:
    features, _ = cancer_data()
    rows = features.head(3)
    split = json.loads(rows.to_json(orient="split"))
    bodies = [
        {"dataframe_split": {"columns": split["columns"], "data": split["data"]}},
        {"dataframe_records": rows.to_dict("records")},
        {"instances": rows.to_dict("records")},
        {"inputs": rows.to_dict("list")},
    ]
    with server.client() as client:
        expected = client.post(PREDICT, json={"records": _records(3)}).json()["predictions"]
        for body in bodies:
            answer = client.post("/invocations", json=body)
            assert answer.status_code == 200, (body, answer.text)
            assert answer.json()["predictions"] == expected
        csv = client.post(
            "/invocations", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"}
        )
        assert csv.json()["predictions"] == expected
        assert client.get("/invocations").status_code == 405
        ragged = client.post("/invocations", json={"inputs": {"a": [1, 2], "b": [3]}})
        assert ragged.status_code == 422 and "same number of values" in ragged.json()["error"]["message"]


def test_a_model_that_cannot_be_served_stops_serve_with_one_line_until_a_maintainer_vouches(
    tracker: Tracker, deployments: DeploymentService, store_url: str, blobs: BlobStore
) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = pd.DataFrame({"a": [0.5, -1.0, 2.0, -3.0], "b": [1.0, 2.0, 3.0, 4.0]})
    model = make_pipeline(FunctionTransformer(abs), LogisticRegression()).fit(x, [0, 1, 0, 1])
    with tracker.start_run("custom") as run:
        run.log_model(model, "custom", input_example=x, trusted_types=["builtins.abs"])
    deployments.create("custom", TrafficPolicy.single("models:/custom/1"))
    loopline = [sys.executable, "-m", "loopline", "--store-uri", store_url, "--artifacts-uri", blobs.url]
    port = free_port()
    serve = [*loopline, "serve", "-d", "custom", "--port", str(port)]
    refused = subprocess.run(serve, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "does not trust: ['builtins.abs']" in refused.stderr and "loopline models trust" in refused.stderr
    vouched = subprocess.run(
        [*loopline, "models", "trust", "custom", "1", "builtins.abs"], capture_output=True, text=True
    )
    assert vouched.returncode == 0, vouched.stderr
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/deployments/custom/predict", json={"records": x.to_dict("records")}
        )
        assert answer.json()["predictions"] == model.predict(x).tolist()
    finally:
        server.terminate()
        server.wait(timeout=30)
