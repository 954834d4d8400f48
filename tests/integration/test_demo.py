from __future__ import annotations

from pathlib import Path

import pytest

from loopline.backends import local_owner, open_backends
from loopline.cli.main import run
from loopline.demo import EXPERIMENT
from loopline.settings import Settings


@pytest.mark.slow
def test_demo_tracks_a_sweep_and_says_where_to_look(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--home", str(tmp_path), "demo"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "loopline.db") in out
    assert "loopline runs show" in out

    backends = open_backends(Settings(home=tmp_path))
    service = backends.tracking(local_owner())
    runs = service.search_runs(EXPERIMENT, order_by=["metrics.roc_auc DESC"])
    sweep = next(r for r in runs if r.parent_id is None)
    children = [r for r in runs if r.parent_id == sweep.id]
    assert len(children) == 4
    assert all(r.status.value == "FINISHED" for r in runs)
    best = children[0]
    assert sweep.tags["best_run"] == best.id
    assert best.metrics["roc_auc"] > 0.95
    assert len(service.metric_history(best.id, "curve/test_accuracy")) == 4
    names = {a.name for a in service.list_artifacts(best.id)}
    assert names == {"predictions.parquet", "features.json", "confusion_matrix.png"}
    backends.close()
