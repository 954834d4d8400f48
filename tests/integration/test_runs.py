from __future__ import annotations

import math

import pytest

from loopline.core.entities import Metric, RunStatus, Source
from loopline.core.errors import Conflict, InvalidInput, NotFound
from loopline.core.ids import new_id
from loopline.tracking.service import TrackingService

BOTH_MODES = True  # local and through the server


def test_a_run_records_its_attributes(service: TrackingService) -> None:
    source = Source(entry_point="train.py", git_commit="a" * 40, git_dirty=True)
    run = service.start_run(
        "churn", run_name="baseline", tags={"team": "ml"}, source=source, environment={"python": "3.11"}
    )
    stored = service.get_run(run.id)
    assert stored == run
    assert (stored.name, stored.status, stored.end_time) == ("baseline", RunStatus.RUNNING, None)
    assert stored.source == source
    assert stored.environment == {"python": "3.11"}
    assert stored.tags == {"team": "ml"}
    assert stored.created_by == service.principal.name


def test_ending_a_run(service: TrackingService) -> None:
    run = service.start_run("churn")
    ended = service.end_run(run.id, RunStatus.FAILED, "ValueError: boom")
    assert ended.status is RunStatus.FAILED
    assert ended.error == "ValueError: boom"
    assert ended.end_time is not None and ended.end_time >= ended.start_time
    assert service.end_run(run.id, RunStatus.FAILED) == ended  # the same ending again: no change
    with pytest.raises(Conflict, match="already ended as FAILED"):
        service.end_run(run.id, RunStatus.FINISHED)
    with pytest.raises(InvalidInput, match="not RUNNING"):
        service.end_run(service.start_run("churn").id, RunStatus.RUNNING)


def test_nested_runs_point_at_their_parent(service: TrackingService) -> None:
    parent = service.start_run("churn")
    child = service.start_run("churn", parent_id=parent.id)
    assert service.get_run(child.id).parent_id == parent.id
    other = service.start_run("other")
    with pytest.raises(InvalidInput, match="parent run"):
        service.start_run("churn", parent_id=other.id)


def test_params_are_write_once(service: TrackingService) -> None:
    run = service.start_run("churn")
    service.log_batch(run.id, params={"model": "rf", "depth": 8})
    service.log_batch(run.id, params={"model": "rf", "trees": 100})  # same value again: fine
    with pytest.raises(Conflict, match=r"param 'depth' of run .* is already '8'"):
        service.log_batch(run.id, params={"depth": 9, "new": "x"})
    assert service.get_run(run.id).params == {"model": "rf", "depth": "8", "trees": "100"}


def test_tags_can_change(service: TrackingService) -> None:
    run = service.start_run("churn", tags={"stage": "dev"})
    service.log_batch(run.id, tags={"stage": "prod", "owner": "ana"})
    assert service.get_run(run.id).tags == {"stage": "prod", "owner": "ana"}


def test_metric_history_and_latest_value(service: TrackingService) -> None:
    run = service.start_run("churn")
    service.log_batch(run.id, [Metric("loss", 0.9, 0, 1000), Metric("loss", 0.5, 2, 1001)])
    service.log_batch(run.id, [Metric("loss", 0.7, 1, 1002)])  # late, lower step
    history = service.metric_history(run.id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.7), (2, 0.5)]
    assert service.get_run(run.id).metrics == {"loss": 0.5}  # highest step wins, not last written


def test_nan_and_infinity_round_trip(service: TrackingService) -> None:
    run = service.start_run("churn")
    batch = [Metric("loss", math.nan, 0, 1), Metric("grad", math.inf, 0, 1), Metric("low", -math.inf, 0, 1)]
    service.log_batch(run.id, batch)
    for found in (service.get_run(run.id), service.search_runs("churn").runs[0]):
        assert math.isnan(found.metrics["loss"])
        assert found.metrics["grad"] == math.inf and found.metrics["low"] == -math.inf
    assert math.isnan(service.metric_history(run.id, "loss")[0].value)


def test_values_come_back_exact_from_get_and_search(service: TrackingService) -> None:
    run = service.start_run("exact")
    values = [0.1 + 0.2, 1.5560281710210484e299, 1.0, 5e-324, -2.2250738585072014e-308, 2.0**53 + 2]
    text = 'a "quoted" \\ back\nslash, é and 💡'
    service.log_batch(
        run.id, [Metric(f"m{i}", v, 0, 1) for i, v in enumerate(values)], params={"p": text}, tags={"t": text}
    )
    for found in (service.get_run(run.id), service.search_runs("exact").runs[0]):
        assert [found.metrics[f"m{i}"] for i in range(len(values))] == values
        assert all(type(v) is float for v in found.metrics.values())  # 1.0 and 2**53 + 2 too
        assert found.params == {"p": text} and found.tags["t"] == text


def test_a_retried_batch_is_stored_once(service: TrackingService) -> None:
    run = service.start_run("churn")
    batch = [Metric("loss", 0.1 * i, i, 1000 + i) for i in range(50)]
    batch_id = new_id()
    service.log_batch(run.id, batch, batch_id=batch_id)
    service.log_batch(run.id, batch, batch_id=batch_id)  # a client retry
    assert len(service.metric_history(run.id, "loss")) == 50
    service.log_batch(run.id, batch)  # a new batch with the same values is new data
    assert len(service.metric_history(run.id, "loss")) == 100


def test_bad_input_is_refused_before_anything_is_written(service: TrackingService) -> None:
    run = service.start_run("churn")
    with pytest.raises(InvalidInput, match="metric key"):
        service.log_batch(run.id, [Metric("ok", 1.0, 0, 1), Metric("bad;key", 1.0, 0, 1)], params={"p": 1})
    with pytest.raises(InvalidInput, match="must be a real number"):
        service.log_batch(run.id, [Metric("x", "high", 0, 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="is 8001 characters"):
        service.log_batch(run.id, params={"p": "x" * 8001})
    stored = service.get_run(run.id)
    assert stored.params == {} and stored.metrics == {}


def test_unknown_and_malformed_run_ids(service: TrackingService) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        service.get_run(new_id())
    with pytest.raises(InvalidInput, match="not a run id"):
        service.get_run("'; DROP TABLE runs; --")
    with pytest.raises(NotFound):
        service.log_batch(new_id(), [Metric("x", 1.0, 0, 1)])


def test_deleted_runs_keep_their_data_but_leave_searches(service: TrackingService) -> None:
    run = service.start_run("churn")
    service.log_batch(run.id, [Metric("auc", 0.8, 0, 1)])
    service.delete_run(run.id)
    assert service.get_run(run.id).deleted
    assert service.get_run(run.id).metrics == {"auc": 0.8}
    assert len(service.search_runs("churn")) == 0
    assert [r.id for r in service.search_runs("churn", include_deleted=True)] == [run.id]


def test_a_search_brings_only_the_columns_asked_for(service: TrackingService) -> None:
    run = service.start_run("wide")
    metrics = [Metric(f"m{i}", float(i), 0, 1) for i in range(50)]
    service.log_batch(run.id, metrics, params={"lr": "0.1", "depth": "3"}, tags={"team": "a", "x": "y"})
    page = service.search_runs("wide", columns=["metrics.m7", "params.lr", "tags.team", "metrics.absent"])
    (found,) = page.runs
    assert found.metrics == {"m7": 7.0} and found.params == {"lr": "0.1"} and found.tags == {"team": "a"}
    (bare,) = service.search_runs("wide", columns=[]).runs
    assert bare.metrics == bare.params == bare.tags == {} and bare.id == run.id
    assert len(service.search_runs("wide").runs[0].metrics) == 50  # no projection: everything
    with pytest.raises(InvalidInput, match=r"'auc' is not params\.KEY"):
        service.search_runs("wide", columns=["auc"])


def test_experiment_activity_counts_live_runs_and_the_newest_start(service: TrackingService) -> None:
    kept = [service.start_run("busy") for _ in range(3)]
    service.delete_run(service.start_run("busy").id)
    service.start_run("quiet")
    activity = {a.experiment_id: a for a in service.experiment_activity()}
    busy = activity[service.get_experiment("busy").id]
    assert busy.runs == 3 and busy.last_run_at == max(r.start_time for r in kept)
    assert activity[service.get_experiment("quiet").id].runs == 1
