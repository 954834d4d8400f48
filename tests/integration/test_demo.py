from __future__ import annotations

from pathlib import Path

import pytest

from loopline.backends import local_owner, open_backends
from loopline.cli.main import run
from loopline.demo import EXPERIMENT, MODEL
from loopline.settings import Settings


@pytest.mark.slow
def test_demo_tracks_registers_evaluates_and_promotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--home", str(tmp_path), "demo"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "loopline.db") in out
    assert "models card breast-cancer" in out and "@champion: passed" in out
    assert "registered datasets:/breast-cancer-train/1" in out and "dataset drift: no" in out

    backends = open_backends(Settings(home=tmp_path))
    owner = local_owner()
    runs = backends.tracking(owner).search_runs(EXPERIMENT)
    sweep = next(r for r in runs if r.parent_id is None)
    children = [r for r in runs if r.parent_id == sweep.id]
    assert len(children) == 4 and all(r.status.value == "FINISHED" for r in runs)
    assert all(r.tags["data_validation"] == "passed" for r in children)
    train = backends.datasets(owner).get("breast-cancer-train")
    assert backends.tracking(owner).inputs(children[0].id) == [("breast-cancer-train", train.digest)]

    registry = backends.registry(owner)
    versions = registry.list_versions(MODEL)
    assert [v.status.value for v in versions] == ["READY"] * 4
    champion = registry.resolve(f"models:/{MODEL}@champion")
    assert sweep.tags["best_version"] == champion.uri
    assert champion.metrics["roc_auc"] > 0.95
    evaluations = backends.evaluations(owner).list(MODEL, champion.version)
    assert evaluations[0].dataset_name == "held-out"
    run_of_champion = backends.tracking(owner).get_run(champion.run_id or "")
    assert len(backends.tracking(owner).metric_history(run_of_champion.id, "curve/test_accuracy")) == 4
    assert "confusion_matrix.png" in {
        a.name for a in backends.tracking(owner).list_artifacts(run_of_champion.id)
    }

    assert run(["--home", str(tmp_path), "demo"]) == 0  # again: an equal model does not unseat the champion
    assert "the champion stays where it was" in capsys.readouterr().out
    assert registry.resolve(f"models:/{MODEL}@champion").version == champion.version
    backends.close()
