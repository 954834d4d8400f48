from __future__ import annotations

from pathlib import Path

import pytest

from loopline import _sdk
from loopline.cli.main import run
from loopline.core.automation import JobKind, JobStatus
from loopline.core.traffic import TrafficPolicy
from loopline.demo import DATASET, DEPLOYMENT, MODEL, MONITOR
from loopline.wiring.backends import local_owner, open_backends
from loopline.wiring.settings import Settings


@pytest.mark.slow
def test_the_demo_closes_the_loop_from_data_to_a_promoted_retrained_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # `make demo`: the default home, ~/.loopline
    monkeypatch.delenv("LOOPLINE_HOME", raising=False)
    try:
        assert run(["demo"]) == 0
    finally:
        _sdk.reset()
    out = capsys.readouterr().out
    (home,) = (tmp_path / ".loopline" / "demo").iterdir()
    assert f"--home {home} loop status {DEPLOYMENT}" in out and "promoted" in out
    assert f"--home {home} ui" in out

    backends = open_backends(Settings(home=home))
    owner = local_owner()
    loops = backends.services(owner).loops
    assert [e.kind for e in loops.events(DEPLOYMENT)] == [
        "declared",
        "triggered",
        "data",
        "canary",
        "promoted",
    ]
    registry = backends.services(owner).registry
    model = registry.get_model(MODEL)
    assert model.aliases == {"champion": 2, "challenger": 2}
    policy = backends.services(owner).deployments.policy(DEPLOYMENT)
    assert policy == TrafficPolicy.single(f"models:/{MODEL}@champion")

    pipeline_runs = backends.store.pipelines.list_runs("training")
    assert len(pipeline_runs) == 2 and {r.status for r in pipeline_runs} == {"FINISHED"}
    tracking = backends.services(owner).tracking
    for version, trials in ((1, 8), (2, 6)):  # each search tracked every trial under its step
        step_run = tracking.get_run(registry.get_version(MODEL, version).run_id or "")
        assert step_run.tags["data_validation"] == "passed"
        children = list(tracking.search_runs(None, filter=f"parent_run_id = '{step_run.id}'", max_results=50))
        assert len(children) == trials
    first_data = backends.services(owner).datasets.get(DATASET)
    validated = next(
        s for s in backends.store.pipelines.get_run(pipeline_runs[-1].id).steps if s.name == "validated"
    )
    assert tracking.inputs(validated.run_id or "") == [(DATASET, first_data.digest)]

    (job,) = backends.store.automation.jobs()
    assert job.kind is JobKind.RETRAIN and job.status is JobStatus.FINISHED and "alert 1" in job.reason
    monitor_runs = backends.services(owner).monitors.runs(MONITOR)
    assert len(monitor_runs) == 3
    before, after = monitor_runs[-1].values, monitor_runs[-2].values  # newest first
    assert before["drift.share"] < 0.2 < after["drift.share"]
    assert "plotly" in (home / "demo-report.html").read_text()
    backends.close()


@pytest.mark.slow
def test_the_demo_reaches_the_same_decision_while_both_cores_are_busy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Latency on a shared machine is noise: two processes spinning on both cores must not
    turn the better model's promotion into a rollback."""
    import subprocess
    import sys

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LOOPLINE_HOME", raising=False)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        assert run(["demo"]) == 0
    finally:
        for burner in burners:
            burner.kill()
        _sdk.reset()
    out = capsys.readouterr().out
    assert "promoted" in out and "rolled back" not in out
    assert "latency_ms: challenger - champion" in out and "non-inferior" in out
    (home,) = (tmp_path / ".loopline" / "demo").iterdir()
    backends = open_backends(Settings(home=home))
    assert backends.services(local_owner()).registry.get_model(MODEL).aliases["champion"] == 2
    backends.close()
