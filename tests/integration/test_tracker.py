"""The SDK's tracker on real stores: run lifecycle, buffering, artifacts of every kind."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import yaml

from loopline.core.entities import Metric, RunStatus
from loopline.core.errors import InvalidInput, MetricWriteError, NotFound
from loopline.core.ids import new_id
from loopline.tracking.active_run import ActiveRun
from loopline.tracking.tracker import Tracker

BOTH_MODES = True  # local and through the server


def test_a_completed_block_finishes_the_run_with_everything_flushed(tracker: Tracker) -> None:
    with tracker.start_run("churn", run_name="rf", tags={"team": "ml"}) as run:
        run.log_params({"model": "rf", "depth": 8})
        for step in range(1000):
            run.log_metric("loss", 1 / (step + 1), step=step)
        run.log_metrics({"auc": 0.91, "f1": 0.8})
    stored = tracker.service.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert stored.params == {"model": "rf", "depth": "8"}
    assert stored.metrics == {"loss": 1 / 1000, "auc": 0.91, "f1": 0.8}
    assert len(tracker.service.metric_history(run.id, "loss")) == 1000
    assert tracker.active_run() is None


def test_an_exception_fails_the_run_and_records_it(tracker: Tracker) -> None:
    with pytest.raises(ZeroDivisionError), tracker.start_run("churn") as run:
        run.log_metric("before", 1.0)
        _ = 1 / 0
    stored = tracker.service.get_run(run.id)
    assert stored.status is RunStatus.FAILED
    assert stored.error is not None and "ZeroDivisionError: division by zero" in stored.error
    assert "Traceback" in stored.error
    assert stored.metrics == {"before": 1.0}  # buffered values survive the failure


def test_keyboard_interrupt_kills_the_run(tracker: Tracker) -> None:
    with pytest.raises(KeyboardInterrupt), tracker.start_run("churn") as run:
        raise KeyboardInterrupt
    assert tracker.service.get_run(run.id).status is RunStatus.KILLED


def test_runs_started_inside_a_run_are_its_children(tracker: Tracker) -> None:
    with tracker.start_run("sweep") as parent:
        with tracker.start_run(run_name="trial-1") as child:
            assert tracker.active_run() is child
        assert tracker.active_run() is parent
        with tracker.start_run("elsewhere", nested=False) as separate:
            pass
    assert tracker.service.get_run(child.id).parent_id == parent.id
    assert tracker.service.get_run(child.id).experiment_id == parent.experiment_id
    assert tracker.service.get_run(separate.id).parent_id is None


def test_invalid_values_fail_at_the_call_not_later(tracker: Tracker) -> None:
    with tracker.start_run("churn") as run:
        with pytest.raises(InvalidInput, match="must be a real number"):
            run.log_metric("auc", "0.9")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="metric key"):
            run.log_metric("a;b", 1.0)
        with pytest.raises(InvalidInput, match="step"):
            run.log_metric("auc", 1.0, step=-1)
        run.log_metric("auc", 0.5)
    assert tracker.service.get_run(run.id).metrics == {"auc": 0.5}


def test_values_the_store_refuses_surface_as_an_error_on_flush(tracker: Tracker) -> None:
    tracker.writer.add(new_id(), Metric("x", 1.0, 0, 1))  # a run that does not exist
    with pytest.raises(
        MetricWriteError, match=r"1 values for run \w+ were not stored: run '\w+' does not exist"
    ):
        tracker.flush()
    tracker.flush()  # reported once


def test_environment_is_captured(tracker: Tracker) -> None:
    with tracker.start_run("churn") as run:
        pass
    environment = tracker.service.get_run(run.id).environment
    assert environment["python"].count(".") == 2
    assert "sqlalchemy" in environment["packages"]


def test_artifacts_of_every_kind_round_trip(tracker: Tracker, tmp_path: Path) -> None:
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (tmp_path / "model" / "sub").mkdir()
    (tmp_path / "model" / "sub" / "card.md").write_text("# model")
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])

    with tracker.start_run("churn") as run:
        run.log_artifact(b"raw bytes", name="notes/raw.txt")
        run.log_artifact(tmp_path / "model")
        run.log_artifact(tmp_path / "model" / "weights.bin", name="copy.bin")
        run.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.json")
        run.log_dict({"lr": 0.1}, "config.yaml")
        run.log_figure(figure, "plots/curve.png")
        run.log_table(frame, "tables/sample.parquet")
    plt.close(figure)

    service = tracker.service
    names = [entry.name for entry in service.list_artifacts(run.id)]
    assert names == [
        "config.json",
        "config.yaml",
        "copy.bin",
        "model/sub/card.md",
        "model/weights.bin",
        "notes/raw.txt",
        "plots/curve.png",
        "tables/sample.parquet",
    ]
    assert service.read_artifact(run.id, "notes/raw.txt") == b"raw bytes"
    assert service.read_artifact(run.id, "copy.bin") == b"\x00\x01" * 1000
    assert json.loads(service.read_artifact(run.id, "config.json")) == {"lr": 0.1, "layers": [1, 2]}
    assert yaml.safe_load(service.read_artifact(run.id, "config.yaml")) == {"lr": 0.1}
    assert service.read_artifact(run.id, "plots/curve.png").startswith(b"\x89PNG")
    table = pd.read_parquet(io.BytesIO(service.read_artifact(run.id, "tables/sample.parquet")))
    pd.testing.assert_frame_equal(table, frame)
    assert [e.name for e in service.list_artifacts(run.id, prefix="model/")] == [
        "model/sub/card.md",
        "model/weights.bin",
    ]

    out = tmp_path / "download"
    written = service.download_artifacts(run.id, out, prefix="model/")
    assert sorted(p.relative_to(out.resolve()).as_posix() for p in written) == [
        "model/sub/card.md",
        "model/weights.bin",
    ]
    assert (out / "model" / "sub" / "card.md").read_text() == "# model"


def test_artifact_mistakes_are_clear(tracker: Tracker, tmp_path: Path) -> None:
    with tracker.start_run("churn") as run:
        with pytest.raises(InvalidInput, match="needs a name"):
            run.log_artifact(b"data")
        with pytest.raises(InvalidInput, match="artifact name"):
            run.log_artifact(b"data", name="../escape.txt")
        with pytest.raises(NotFound, match="no such file"):
            run.log_artifact(tmp_path / "missing.txt")
        with pytest.raises(InvalidInput, match=r"\.json, \.yaml or \.yml"):
            run.log_dict({}, "config.txt")
        with pytest.raises(InvalidInput, match=r"\.parquet"):
            run.log_table(pd.DataFrame(), "table.csv")
    with pytest.raises(NotFound, match=r"has no artifact 'nope\.txt'"):
        tracker.service.read_artifact(run.id, "nope.txt")


def _log_in_child(run: ActiveRun) -> None:
    for step in range(5):
        run.log_metric("child", 1.0, step=step)
    run.flush()


def test_a_forked_child_logs_its_own_values_and_not_its_parents(tracker: Tracker) -> None:
    with tracker.start_run("fork") as run:
        for step in range(10):
            run.log_metric("parent", 1.0, step=step)  # still buffered when the child forks
        child = multiprocessing.get_context("fork").Process(target=_log_in_child, args=(run,))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
    assert len(tracker.service.metric_history(run.id, "parent")) == 10
    assert len(tracker.service.metric_history(run.id, "child")) == 5
