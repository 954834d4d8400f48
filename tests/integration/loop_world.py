"""The closed loop's test world: a served champion of a two-feature concept, a deployment,
the loop service, and a client that sends traffic and labels through the HTTP server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopline as ll
from loopline import _sdk
from loopline._pipelines import run_pipeline
from loopline.automation.loops import LoopService
from loopline.core.traffic import TrafficPolicy
from loopline.specs.loop import LoopPolicy
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import wait_until
from tests.integration import pipeline_steps as steps
from tests.integration.serving_helpers import RunningServer, running_server

FEATURES = ["a", "b", "c"]
SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store matters little here


@dataclass
class World:
    server: RunningServer
    client: httpx.Client
    backends: Backends
    loops: LoopService
    classes: tuple[Any, Any] = (0, 1)  # what the model calls y = 0 and y = 1

    def served_arms(self, frame: pd.DataFrame, labels: bool = True) -> list[str]:
        """One request per row (labels sent as feedback); the arms that answered."""
        arms, feedback = [], []
        for record, label in zip(frame[FEATURES].to_dict("records"), frame["y"], strict=True):
            response = self.client.post("/v1/deployments/churn-prod/predict", json={"records": [record]})
            if response.status_code != 200:
                arms.append(f"error {response.status_code}")
                continue
            body = response.json()
            arms.append(body["arm"])
            feedback.append({"request_id": body["request_id"], "label": self.classes[int(label)]})
        if labels and feedback:
            assert (
                self.client.post("/v1/deployments/churn-prod/feedback", json={"labels": feedback}).status_code
                == 202
            )
        time.sleep(0.6)  # the log is flushed every 0.2 s
        return arms

    def wait_for_version(self, version: int) -> None:
        record = steps.concept(1, 99, 1.0)[FEATURES].to_dict("records")
        wait_until(
            lambda: (
                self.client.post("/v1/deployments/churn-prod/predict", json={"records": record}).json()[
                    "version"
                ]
                == version
            )
        )

    def wait_for_arms(self, wanted: set[str]) -> None:
        deadline = time.monotonic() + 30
        probe = steps.concept(1, 99, 1.0)
        while set(self.served_arms(pd.concat([probe] * 10), labels=False)) != wanted:
            assert time.monotonic() < deadline, f"the server never served {wanted}"


def policy(**changes: Any) -> LoopPolicy:
    # Margins sized for ~80 challenger requests: an error-free arm shows an error rate under
    # 10 points sooner than under 2 (tests/unit/test_loop_verdict.py judges the defaults).
    rollout = {
        "percent": 50, "min_requests": 60, "max_minutes": 30, "max_error_rate_increase": 0.1,
        **changes.pop("rollout", {}),
    }  # fmt: skip
    return LoopPolicy.parse(
        {
            "deployment": "churn-prod",
            "model": "churn",
            "pipeline": "tests.integration.pipeline_steps:retrain_churn",
            "reference_dataset": "churn-ref",
            "target": "y",
            "rollout": rollout,
            **changes,
        }
    )


def make_world(store_url: str, tmp_path: Path, classes: tuple[Any, Any]) -> Iterator[World]:
    ll.configure(store_uri=store_url, artifacts_uri=str(tmp_path / "artifacts"))
    reference = steps.concept(200, seed=0, sign=1.0)
    reference["y"] = reference["y"].map(dict(enumerate(classes)))
    ll.datasets.register("churn-ref", reference)
    with ll.start_run("churn") as run:
        model = LogisticRegression().fit(reference[FEATURES], reference["y"])
        champion = run.log_model(model, "churn", input_example=reference[FEATURES].head())
    ll.registry_service().set_alias("churn", "champion", champion.version)
    backends = _sdk._backends_in_use()
    deployments = backends.services(local_owner()).deployments
    deployments.create("churn-prod", TrafficPolicy.single("models:/churn@champion"))
    loops = backends.services(local_owner(), run_pipeline).loops
    with running_server(backends, ("churn-prod",)) as server, server.client() as client:
        yield World(server, client, backends, loops, classes)
    _sdk.reset()


def kinds(world: World) -> list[str]:
    return [e.kind for e in world.loops.events("churn-prod")]


def champion_version() -> int:
    return ll.registry_service().get_model("churn").aliases["champion"]
