"""A/B, canary and shadow reports from the prediction log and feedback labels."""

from __future__ import annotations

import time

import pytest

from loopline.artifacts import BlobStore
from loopline.core.traffic import Arm, TrafficPolicy
from loopline.predictions.reports import deployment_report, wilson
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.integration.serving_helpers import cancer_data, register_cancer_models, running_server

PREDICT = "/v1/deployments/cancer/predict"


@pytest.fixture
def backends(store: MetadataStore, blobs: BlobStore, tracker: Tracker) -> Backends:
    register_cancer_models(tracker)
    return Backends(store, blobs)


def test_an_ab_report_compares_arms_with_feedback(backends: Backends) -> None:
    deployments = backends.services(local_owner()).deployments
    policy = TrafficPolicy.ab([("a", "models:/cancer/1", 1), ("b", "models:/cancer/2", 1)], "field:user")
    deployments.create("cancer", policy)
    features, target = cancer_data()
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        labels = []
        for i in range(len(features)):
            record = {**features.iloc[i].to_dict(), "user": f"u{i}"}
            answer = client.post(PREDICT, json={"records": [record]}).json()
            labels.append({"request_id": answer["request_id"], "label": int(target.iloc[i])})
        bad = {**features.iloc[0].to_dict(), "user": "u0", "mean radius": "x"}
        assert client.post(PREDICT, json={"records": [bad]}).status_code == 422
        assert client.post("/v1/deployments/cancer/feedback", json={"labels": labels}).status_code == 202
    report = deployment_report(backends.tables, "cancer", policy)
    arms = {arm.arm: arm for arm in report.arms}
    assert sum(arm.requests for arm in arms.values()) == len(features)
    assert sum(arm.errors for arm in arms.values()) == 1  # the refused request counts against its arm
    for arm in arms.values():
        assert arm.labelled == arm.requests and arm.accuracy is not None and arm.accuracy_ci is not None
        assert arm.accuracy_ci[0] < arm.accuracy < arm.accuracy_ci[1]
        assert arm.latency_ms_mean > 0 and arm.latency_ms_ci[0] < arm.latency_ms_mean
    assert arms["a"].versions == [1] and arms["b"].versions == [2]
    assert {c["metric"] for c in report.comparisons} == {"latency_ms", "error_rate", "accuracy"}
    assert report.sample_ratio is not None and not report.sample_ratio["mismatch"]  # hashing splits evenly
    assert report.warnings == []


def test_a_skewed_split_is_flagged_as_a_sample_ratio_mismatch(backends: Backends) -> None:
    deployments = backends.services(local_owner()).deployments
    deployments.create("cancer", TrafficPolicy.canary("models:/cancer/1", "models:/cancer/2", 10))
    features, _ = cancer_data()
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        for i in range(300):
            client.post(PREDICT, json={"records": [features.iloc[i % 50].to_dict()]})
    honest = deployment_report(backends.tables, "cancer", deployments.policy("cancer"))
    assert not honest.sample_ratio or not honest.sample_ratio["mismatch"]
    # judged against a 50/50 split it was never given, the same traffic is a mismatch
    skewed = TrafficPolicy(
        "canary", (Arm("stable", "models:/cancer/1", 50), Arm("canary", "models:/cancer/2", 50))
    )
    report = deployment_report(backends.tables, "cancer", skewed)
    assert report.sample_ratio is not None and report.sample_ratio["mismatch"]
    assert "sample ratio mismatch" in report.warnings[0]


def test_a_shadow_report_measures_agreement(backends: Backends) -> None:
    deployments = backends.services(local_owner()).deployments
    policy = TrafficPolicy.shadow("models:/cancer/1", "models:/cancer/2")
    deployments.create("cancer", policy)
    features, target = cancer_data()
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        labels = []
        for i in range(100):
            answer = client.post(PREDICT, json={"records": [features.iloc[i].to_dict()]}).json()
            labels.append({"request_id": answer["request_id"], "label": int(target.iloc[i])})
        client.post("/v1/deployments/cancer/feedback", json={"labels": labels})
    report = deployment_report(backends.tables, "cancer", policy)
    shadow = report.shadow
    assert shadow is not None and shadow["pairs"] == 100 and shadow["labelled"] == 100
    assert 0.5 < shadow["agreement"] <= 1.0
    assert 0.8 < shadow["primary_accuracy"] <= 1.0 and 0 <= shadow["mcnemar_p_value"] <= 1


def test_a_reused_request_id_gets_each_label_on_the_answer_it_followed(backends: Backends) -> None:
    """A client sends the same id twice (same input, same answer), labelling the first right and
    the second wrong: each label scores the answer that was newest when it came."""
    deployments = backends.services(local_owner()).deployments
    policy = TrafficPolicy.single("models:/cancer/1")
    deployments.create("cancer", policy)
    features, _ = cancer_data()
    record = {"records": [features.iloc[0].to_dict()]}
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        for right in (True, False):
            answer = client.post(PREDICT, json=record, headers={"X-Request-Id": "order-17"}).json()
            assert answer["request_id"] == "order-17"
            label = answer["predictions"][0] if right else 1 - answer["predictions"][0]
            time.sleep(0.005)  # the log's clock is in milliseconds
            feedback = {"labels": [{"request_id": "order-17", "label": label}]}
            assert client.post("/v1/deployments/cancer/feedback", json=feedback).status_code == 202
            time.sleep(0.005)
    (arm,) = deployment_report(backends.tables, "cancer", policy).arms
    assert (arm.requests, arm.labelled, arm.accuracy) == (2, 2, 0.5)


def test_wilson_intervals_behave() -> None:
    low, high = wilson(90, 100)
    assert low < 0.9 < high and low > 0.8 and high < 0.96
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
