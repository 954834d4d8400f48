"""Retraining loops declared, read and reset through the service interface: in process and
through a server alike. (Their retraining and canaries: test_loop.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loopline.core.errors import Conflict, InvalidInput, NotFound
from loopline.core.loops import LoopState
from loopline.core.traffic import TrafficPolicy
from loopline.services import Services
from loopline.specs.loop import LoopPolicy
from loopline.tracking.tracker import Tracker
from tests.integration.serving_helpers import cancer_data, register_cancer_models

BOTH_MODES = True  # in process, and through a server


@pytest.fixture
def declared(services: Services, tracker: Tracker) -> LoopPolicy:
    register_cancer_models(tracker)
    services.registry.set_alias("cancer", "champion", 1)
    services.deployments.create("cancer-prod", TrafficPolicy.single("models:/cancer@champion"))
    features, target = cancer_data()
    services.datasets.register("patients", features.assign(target=target))
    policy = LoopPolicy.parse(
        {
            "deployment": "cancer-prod",
            "model": "cancer",
            "pipeline": "flows:train",
            "reference_dataset": "patients",
            "target": "target",
            "cooldown_minutes": 5,
        }
    )
    services.loops.declare(policy)
    return policy


def test_a_declared_loop_waits_idle_with_its_policy_on_record(
    services: Services, declared: LoopPolicy
) -> None:
    loop = services.loops.get("cancer-prod")
    assert loop.state is LoopState.IDLE and loop.challenger is None
    assert loop.policy["pipeline"] == "flows:train" and loop.policy["cooldown_minutes"] == 5
    events = services.loops.events("cancer-prod")
    assert [e.kind for e in events] == ["declared"] and events[0].actor == services.principal.name
    with pytest.raises(Conflict, match="idle; there is nothing to reset"):
        services.loops.reset("cancer-prod", "by hand")


def test_a_loop_needs_what_its_policy_names(services: Services, declared: LoopPolicy) -> None:
    with pytest.raises(NotFound, match="missing"):
        services.loops.declare(declared.model_copy(update={"reference_dataset": "missing"}))
    with pytest.raises(
        InvalidInput, match="has no target column 'churned'"
    ):  # checked now, not at retraining
        services.loops.declare(declared.model_copy(update={"target": "churned"}))
    with pytest.raises(InvalidInput, match="teleport"):
        services.loops.declare(declared.model_copy(update={"gates": {"gates": ["teleport"]}}))
    with pytest.raises(NotFound):
        services.loops.get("no-such-deployment")


def test_the_cli_refuses_a_pipeline_it_could_not_import(cli: Any, tmp_path: Path) -> None:
    policy = tmp_path / "loop.yaml"
    policy.write_text(
        "deployment: churn\nmodel: churn\npipeline: no_such_flows:train\n"
        "reference_dataset: customers\ntarget: churned\n"
    )
    code, _, err = cli("loop", "declare", str(policy))
    assert code == 1 and "module 'no_such_flows' cannot be imported from here" in err
