"""Batch scoring (locally and on a real local Ray) and packaging for Kubernetes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from loopline.artifacts import BlobStore
from loopline.core.errors import InvalidInput
from loopline.core.traffic import TrafficPolicy
from loopline.serving.batch import score_file
from loopline.serving.export import export_deployment
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import Invoke
from tests.integration.serving_helpers import cancer_data, register_cancer_models


@pytest.fixture
def backends(store: MetadataStore, blobs: BlobStore, tracker: Tracker) -> Backends:
    register_cancer_models(tracker)
    return Backends(store, blobs)


@pytest.fixture
def rows(tmp_path: Path) -> pd.DataFrame:
    features, _ = cancer_data()
    repeated = pd.concat([features] * 4, ignore_index=True)  # 2276 rows
    return repeated.assign(customer=np.arange(len(repeated)))  # a column the model ignores


def test_scoring_a_parquet_file_in_chunks(backends: Backends, rows: pd.DataFrame, tmp_path: Path) -> None:
    source, target = tmp_path / "in.parquet", tmp_path / "out" / "scored.parquet"
    rows.to_parquet(source, row_group_size=500)
    registry = backends.services(local_owner()).registry
    summary = score_file(registry, "models:/cancer/1", source, target, chunk_rows=300, progress=False)
    scored = pd.read_parquet(target)
    assert summary.rows == len(rows) == len(scored) and summary.model == "models:/cancer/1"
    assert (scored["customer"] == rows["customer"]).all()  # order and passthrough columns kept
    expected = registry.load("models:/cancer/1").predict(rows.drop(columns="customer"))
    assert (scored["prediction"].to_numpy() == expected["prediction"].to_numpy()).all()
    assert np.allclose(scored["proba.0"] + scored["proba.1"], 1)
    assert pq.ParquetFile(target).metadata.num_row_groups == 8  # one per chunk: memory bounded by a chunk
    assert not list(target.parent.glob(".*partial"))


def test_scoring_a_csv_file_into_parquet_or_csv(
    backends: Backends, rows: pd.DataFrame, tmp_path: Path
) -> None:
    source, target = tmp_path / "in.csv", tmp_path / "scored.parquet"
    rows.to_csv(source, index=False)
    registry = backends.services(local_owner()).registry
    summary = score_file(registry, "models:/cancer/2", source, target, chunk_rows=1000, progress=False)
    assert summary.rows == len(rows) == pq.ParquetFile(target).metadata.num_rows
    score_file(registry, "models:/cancer/2", source, tmp_path / "scored.csv", chunk_rows=1000, progress=False)
    as_csv = pd.read_csv(tmp_path / "scored.csv")
    pd.testing.assert_frame_equal(as_csv, pd.read_parquet(target), check_dtype=False)


def test_batch_scoring_mistakes(backends: Backends, rows: pd.DataFrame, tmp_path: Path) -> None:
    registry = backends.services(local_owner()).registry
    source = tmp_path / "in.parquet"
    rows.drop(columns=["mean area"]).to_parquet(source)
    with pytest.raises(InvalidInput, match=r"lacks columns the model needs: \['mean area'\]"):
        score_file(registry, "models:/cancer/1", source, tmp_path / "out.parquet", progress=False)
    assert not (tmp_path / "out.parquet").exists()  # nothing half-written where the caller looks
    with pytest.raises(InvalidInput, match="does not exist"):
        score_file(
            registry, "models:/cancer/1", tmp_path / "nope.parquet", tmp_path / "out.parquet", progress=False
        )
    with pytest.raises(InvalidInput, match=r"write \.parquet or \.csv"):
        score_file(registry, "models:/cancer/1", source, tmp_path / "out.json", progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # Ray gets files, never the store
def test_scoring_on_a_real_local_ray_cluster(backends: Backends, rows: pd.DataFrame, tmp_path: Path) -> None:
    source, target = tmp_path / "in.parquet", tmp_path / "scored.parquet"
    rows.to_parquet(source)
    registry = backends.services(local_owner()).registry
    summary = score_file(
        registry, "models:/cancer/1", source, target, chunk_rows=400, ray_address="local", progress=False
    )
    local = tmp_path / "local.parquet"
    score_file(registry, "models:/cancer/1", source, local, chunk_rows=400, progress=False)
    assert summary.rows == len(rows)
    pd.testing.assert_frame_equal(pd.read_parquet(target), pd.read_parquet(local))


def test_export_writes_a_dockerfile_and_valid_manifests(backends: Backends, tmp_path: Path) -> None:
    deployments = backends.services(local_owner()).deployments
    deployment = deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    written = export_deployment(
        deployment, tmp_path, image="registry.local/loopline:1", replicas=3, max_replicas=12
    )
    assert [p.name for p in written] == ["Dockerfile", "kubernetes.yaml"]
    dockerfile = (tmp_path / "Dockerfile").read_text()
    assert (
        dockerfile.startswith("# Serves loopline deployment 'cancer'") and "\nFROM python:3.11" in dockerfile
    )
    assert '"serve", "--deployment", "cancer"' in dockerfile and "USER 10001" in dockerfile
    documents = list(yaml.safe_load_all((tmp_path / "kubernetes.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    workload, service, autoscaler = documents
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert workload["spec"]["replicas"] == 3 and container["image"] == "registry.local/loopline:1"
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    assert workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30
    assert workload["spec"]["selector"]["matchLabels"] == workload["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == workload["metadata"]["name"]
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (3, 12)
    assert {e["name"] for e in container["env"]} == {
        "LOOPLINE_STORE_URI",
        "LOOPLINE_ARTIFACTS_URI",
        "LOOPLINE_S3_ENDPOINT_URL",
    }


def test_the_deployments_cli(cli: Invoke, backends: Backends, tmp_path: Path) -> None:
    code, out, _ = cli("deployments", "create", "cancer", "--model", "models:/cancer/1", "--reason", "launch")
    assert code == 0 and "single: main=models:/cancer/1" in out
    code, out, _ = cli(
        "deployments",
        "set-traffic",
        "cancer",
        "--model",
        "models:/cancer/1",
        "--canary",
        "models:/cancer/2",
        "--percent",
        "20",
    )
    assert code == 0 and "revision 2" in out and "(20%)" in out
    code, out, _ = cli(
        "deployments",
        "set-traffic",
        "cancer",
        "--arm",
        "a=models:/cancer/1:3",
        "--arm",
        "b=models:/cancer/2",
        "--key",
        "field:user",
    )
    assert code == 0 and "sticky by field:user" in out
    code, out, _ = cli("deployments", "rollback", "cancer")
    assert code == 0 and "revision 4" in out and "canary" in out
    code, out, _ = cli("deployments", "show", "cancer", "--json")
    shown = __import__("json").loads(out)
    assert [r["revision"] for r in shown["revisions"]] == [1, 2, 3, 4] and shown["serving"][
        "canary"
    ] == "models:/cancer/2"
    assert cli("deployments", "list")[0] == 0
    assert shown["deployment"]["extra_fields"] == "refuse"
    code, out, _ = cli("deployments", "extra-fields", "cancer", "ignore", "--reason", "clients send ids")
    assert code == 0 and "cancer: fields its model does not take are ignored" in out
    code, out, _ = cli("deployments", "show", "cancer")
    assert "fields its model does not take: ignored" in out
    code, _, err = cli("deployments", "extra-fields", "cancer", "keep")
    assert code == 1 and "refuse or ignore, not 'keep'" in err
    code, out, _ = cli("deployments", "report", "cancer", "--json")
    assert code == 0 and [a["arm"] for a in __import__("json").loads(out)["arms"]] == ["stable", "canary"]
    code, out, _ = cli("deployments", "export", "cancer", "--to", str(tmp_path / "k8s"))
    assert code == 0 and (tmp_path / "k8s" / "kubernetes.yaml").exists()
    code, _, err = cli("deployments", "create", "other", "--arm", "a=models:/cancer/1")
    assert code == 1 and "needs --key" in err
    code, _, err = cli(
        "deployments",
        "set-traffic",
        "cancer",
        "--model",
        "models:/cancer/1",
        "--canary",
        "models:/cancer/2",
        "--shadow",
        "models:/cancer/1",
    )
    assert code == 1 and "not both" in err


def test_the_predict_cli(cli: Invoke, backends: Backends, rows: pd.DataFrame, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    rows.to_parquet(source)
    code, out, _ = cli(
        "predict", "models:/cancer/1", "--input", str(source), "--output", str(tmp_path / "out.parquet")
    )
    assert code == 0 and f"scored {len(rows):,} rows with models:/cancer/1" in out
    code, _, err = cli(
        "predict",
        "models:/cancer/1",
        "--input",
        str(tmp_path / "nope.csv"),
        "--output",
        str(tmp_path / "o.parquet"),
    )
    assert code == 1 and "does not exist" in err
