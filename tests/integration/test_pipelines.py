"""Pipelines for real: the SDK's stores, tracked runs, worker processes and a local Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopline as ll
from loopline import _sdk
from loopline.core.entities import RunStatus
from loopline.core.errors import InvalidInput
from loopline.core.pipelines import StepStatus
from tests.integration import pipeline_steps as steps

# The store matters little to these: they run on SQLite only; the others on every backend.
SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def sdk(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    journal = tmp_path / "journal.txt"
    monkeypatch.setenv("LOOPLINE_TEST_JOURNAL", str(journal))
    ll.configure(store_uri=store_url, artifacts_uri=str(tmp_path / "artifacts"))
    yield journal
    _sdk.reset()


def statuses(result: ll.PipelineResult) -> dict[str, StepStatus]:
    return {s.name: s.status for s in result.run.steps}


def test_a_pipeline_runs_its_steps_as_nested_tracked_runs_with_typed_outputs(sdk: Path) -> None:
    result = steps.training(rows=300, c=0.5)

    assert statuses(result) == dict.fromkeys(["load", "summarize", "train", "scores"], StepStatus.FINISHED)
    parent = ll.get_run(result.id)
    assert parent.status is RunStatus.FINISHED and parent.params == {"rows": "300", "c": "0.5"}
    assert parent.metrics["steps_run"] == 4
    children = {s.name: ll.get_run(s.run_id) for s in result.run.steps if s.run_id}
    assert all(run.parent_id == result.id for run in children.values())
    assert children["train"].params == {"frame": "<output of load>", "c": "0.5"}
    assert children["train"].metrics["train_accuracy"] > 0.9

    frame = result.output("load")
    assert isinstance(frame, pd.DataFrame) and len(frame) == 300  # stored as Parquet, read back
    names = [a.name for a in ll.tracking_service().list_artifacts(result.step("load").run_id or "")]
    assert "outputs/output.parquet" in names
    assert result.output("summarize") == {"rows": 300, "positive_share": pytest.approx(frame["y"].mean())}
    version = result.output("train")
    assert isinstance(version, ll.ModelVersion) and version.model == "pipeline-model"  # in the registry
    probabilities = result.output()
    assert isinstance(probabilities, np.ndarray) and probabilities.shape == (300,)
    log = ll.tracking_service().read_artifact(result.step("train").run_id or "", "logs/step.log")
    assert b"training on 300 rows" in log


def test_unchanged_steps_are_reused_and_changed_ones_recomputed(sdk: Path) -> None:
    first = steps.training(rows=120)
    again = steps.training(rows=120)
    assert set(statuses(again).values()) == {StepStatus.CACHED}
    assert steps.entries().count("load") == 1  # nothing ran the second time
    assert again.step("train").run_id == first.step("train").run_id  # outputs of the original run
    assert np.array_equal(again.output(), first.output())

    changed = steps.training(rows=120, c=2.0)  # only train depends on c, and scores on train
    assert statuses(changed) == {
        "load": StepStatus.CACHED,
        "summarize": StepStatus.CACHED,
        "train": StepStatus.FINISHED,
        "scores": StepStatus.FINISHED,
    }
    fresh = steps.training.run({"rows": 120}, cache=False)
    assert set(statuses(fresh).values()) == {StepStatus.FINISHED}


@SQLITE_ONLY
def test_a_failing_step_is_retried_with_backoff(sdk: Path) -> None:
    result = steps.retried(failures=2)
    assert result.step("flaky_with_retries").attempts == 3 and result.output() == 50
    log = ll.tracking_service().read_artifact(result.step("flaky_with_retries").run_id or "", "logs/step.log")
    assert log.count(b"ConnectionError: the feature service did not answer") == 2
    assert b"retrying in 0.0s" in log


def test_a_step_that_raises_fails_the_pipeline_and_resume_starts_from_it(sdk: Path) -> None:
    with pytest.raises(ll.PipelineFailed, match="column 'a' has gone missing upstream") as failed:
        steps.fragile(rows=40)
    run = failed.value.run
    assert {s.name: s.status for s in run.steps} == {
        "uncached_load": StepStatus.FINISHED,
        "breaks_unless_fixed": StepStatus.FAILED,
        "summarize": StepStatus.FINISHED,  # independent of the failure
        "after": StepStatus.SKIPPED,
    }
    assert run.status == "FAILED" and f"--resume {run.id}" in str(failed.value)
    assert ll.get_run(run.id).status is RunStatus.FAILED
    step_run = ll.get_run(next(s.run_id for s in run.steps if s.name == "breaks_unless_fixed") or "")
    assert step_run.status is RunStatus.FAILED and "ValueError" in (step_run.error or "")

    Path(f"{sdk}.fixed").touch()
    resumed = steps.fragile.run({"rows": 40}, resume=run.id)
    assert statuses(resumed) == {
        "uncached_load": StepStatus.CACHED,  # reused from the failed run although cache=False
        "breaks_unless_fixed": StepStatus.FINISHED,
        "summarize": StepStatus.CACHED,
        "after": StepStatus.FINISHED,
    }
    assert resumed.run.resumed_from == run.id and resumed.output() == 41
    assert steps.entries().count("breaks_unless_fixed") == 2


@SQLITE_ONLY
def test_a_step_past_its_timeout_is_stopped(sdk: Path) -> None:
    with pytest.raises(ll.PipelineFailed, match=r"StepTimeout: still running after 1s") as failed:
        steps.hanging()
    hung = next(s for s in failed.value.run.steps if s.name == "hangs")
    assert hung.status is StepStatus.FAILED
    assert ll.get_run(hung.run_id or "").status is RunStatus.FAILED  # ended although its process was killed
    pid = int(Path(sdk).read_text().split()[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@SQLITE_ONLY
def test_a_killed_worker_fails_its_step_not_the_runner(sdk: Path) -> None:
    with pytest.raises(ll.PipelineFailed, match="WorkerDied") as failed:
        steps.dying.run(executor="process")
    died = failed.value.run.steps[0]
    assert ll.get_run(died.run_id or "").status is RunStatus.FAILED


def test_independent_steps_run_in_parallel_on_worker_processes(sdk: Path, tmp_path: Path) -> None:
    result = steps.rendezvous.run({"directory": str(tmp_path)}, executor="process", workers=2)
    assert result.output() == ["left", "right"]
    pids = {line.split()[0]: line.split()[1] for line in sdk.read_text().splitlines()}
    assert len({pids["meet-left"], pids["meet-right"], str(os.getpid())}) == 3


def test_steps_run_as_tasks_on_a_real_local_ray(sdk: Path) -> None:
    result = steps.training.run({"rows": 150}, executor="ray", ray_address="local")
    assert set(statuses(result).values()) == {StepStatus.FINISHED}
    pids = {line.split()[1] for line in sdk.read_text().splitlines()}
    assert str(os.getpid()) not in pids
    assert result.output().shape == (150,)


@SQLITE_ONLY
def test_mistakes_are_reported_clearly(sdk: Path) -> None:
    with pytest.raises(InvalidInput, match="pipeline training: got an unexpected keyword argument 'rowz'"):
        steps.training(rowz=3)
    with pytest.raises(
        ll.PipelineFailed, match="returned a socket, which loopline cannot store without pickle"
    ):
        steps.unstorable()

    @ll.pipeline
    def missing():  # type: ignore[no-untyped-def]
        return steps.summarize(steps.load())  # type: ignore[call-arg]

    @ll.pipeline
    def branching():  # type: ignore[no-untyped-def]
        frame = steps.load(10)
        if frame:  # the output is not known while the graph is traced
            steps.summarize(frame)

    with pytest.raises(InvalidInput, match="step load: missing a required argument: 'rows'"):
        missing()  # the graph is checked before anything runs
    with pytest.raises(InvalidInput, match="only known when the pipeline runs"):
        branching()
    assert steps.entries() == []
    assert len(steps.load(5)) == 5  # outside a pipeline a step is its plain function


@SQLITE_ONLY
def test_pipeline_runs_are_run_listed_and_shown_by_the_cli(
    sdk: Path, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loopline.cli.main import run

    common = ["--store-uri", store_url, "--artifacts-uri", str(tmp_path / "artifacts")]
    target = "tests.integration.pipeline_steps:training"
    assert run([*common, "pipelines", "run", target, "-p", "rows=80", "-p", "c=0.3"]) == 0
    runs = ll.tracking_service().search_runs(None, filter="tags.`loopline.pipeline` = 'training'")
    (first,) = list(runs)
    assert first.params == {"rows": "80", "c": "0.3"}  # typed by the pipeline's signature
    assert "FINISHED" in capsys.readouterr().out
    assert run([*common, "pipelines", "run", target, "-p", "rows=80", "-p", "c=0.3", "--json"]) == 0
    assert steps.entries().count("train") == 1
    second = json.loads(capsys.readouterr().out)
    assert second["status"] == "FINISHED" and {s["status"] for s in second["steps"]} == {"CACHED"}

    assert run([*common, "pipelines", "list"]) == 0
    listed = capsys.readouterr().out
    assert first.id[:8] in listed and second["id"][:8] in listed
    assert run([*common, "pipelines", "show", first.id]) == 0
    shown = capsys.readouterr().out
    assert all(name in shown for name in ("load", "summarize", "train", "scores", "FINISHED"))

    assert run([*common, "pipelines", "run", target, "-p", "rows"]) == 2
    assert "-p takes NAME=VALUE" in capsys.readouterr().err
    assert run([*common, "pipelines", "run", "tests.integration.pipeline_steps:nothing"]) == 1
    assert "has no pipeline 'nothing'" in capsys.readouterr().err


def test_a_search_step_tracks_every_trial_and_registers_the_best_model(sdk: Path) -> None:
    result = steps.tuned(trials=6)
    version = result.output()
    assert isinstance(version, ll.ModelVersion) and version.model == "tuned"
    step_run = ll.get_run(result.step("search").run_id or "")
    trials = list(ll.search_runs(None, filter=f"parent_run_id = '{step_run.id}'", max_results=50))
    assert len(trials) == 6 and all("c" in t.params and "score" in t.metrics for t in trials)
    best = max(trials, key=lambda t: t.metrics["score"])
    assert step_run.tags["loopline.best_trial_run"] == best.id
    assert version.run_id == step_run.id
    again = steps.tuned(trials=6)  # a cached search registers nothing new
    assert again.output().version == version.version and again.step("search").status is StepStatus.CACHED


@SQLITE_ONLY
def test_trials_are_pruned_and_failures_do_not_stop_the_search(sdk: Path) -> None:
    with ll.start_run("search") as parent:
        result = ll.tune(steps.pruned_objective, n_trials=9, seed=1)
    assert result.trials == 9 and result.pruned == 4 and result.pruned + result.failed < 9
    assert result.best_value == max(v for v in result.values if v is not None)
    runs = list(ll.search_runs("search", filter=f"parent_run_id = '{parent.id}'", max_results=50))
    pruned = [r for r in runs if r.tags.get("loopline.trial_state") == "pruned"]
    assert len(pruned) == 4 and all(r.status is RunStatus.FINISHED for r in pruned)
    history = ll.get_metric_history(pruned[0].id, "score/intermediate")
    assert [m.value for m in history] == [-1.0, -1.0]  # reported live; pruned after the warm-up step
    with pytest.raises(InvalidInput, match="n_trials must be at least 1"):
        ll.tune(steps.pruned_objective, n_trials=0)


@SQLITE_ONLY
def test_trials_run_in_parallel_on_a_real_local_ray(sdk: Path) -> None:
    frame = steps.load.fn(300)
    with ll.start_run("search-on-ray") as parent:
        result = ll.tune(steps.logistic_objective(frame), n_trials=4, ray_address="local", workers=2)
    assert result.trials == 4 and result.failed == 0
    runs = list(ll.search_runs("search-on-ray", filter=f"parent_run_id = '{parent.id}'", max_results=50))
    assert len(runs) == 4 and {r.status for r in runs} == {RunStatus.FINISHED}
    assert result.best_run_id in {r.id for r in runs}


def test_command_line_parameters_are_typed_by_the_pipeline_signature() -> None:
    from loopline.cli.pipelines import parse_params

    assert parse_params(steps.training, ["rows=80", "c=2"]) == {"rows": 80, "c": 2.0}
    assert parse_params(steps.rendezvous, ["directory=010"]) == {"directory": "010"}  # text stays text
    for bad, message in (("rows=3.7", "whole number"), ("rows=null", "whole number"), ("c=abc", "a number")):
        with pytest.raises(InvalidInput, match=message):
            parse_params(steps.training, [bad])


FLOW = """
import loopline as ll

@ll.step
def double(x: int) -> int:
    return 2 * x

@ll.pipeline
def flow(x: int = 3) -> int:
    return double(x)
"""


def test_runs_of_a_pipeline_the_cli_runs_record_its_module_and_commit(tmp_path: Path) -> None:
    """Provenance is the user's code: the pipeline's file and its repository's commit, not
    the loopline command that ran it."""
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / "flows.py").write_text(FLOW)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "flows.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "flows"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    env = {**os.environ, "LOOPLINE_HOME": str(tmp_path / "home")}
    env.pop("LOOPLINE_STORE_URI", None)
    env.pop("LOOPLINE_ARTIFACTS_URI", None)
    env.pop("LOOPLINE_ENTRY_POINT", None)
    done = subprocess.run(
        [sys.executable, "-m", "loopline", "pipelines", "run", f"{repo / 'flows.py'}:flow", "--json"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "loopline", "runs", "list", "--json"], env=env, capture_output=True, text=True
    )
    runs = json.loads(listed.stdout)["runs"]
    assert len(runs) == 2  # the pipeline's run and its step's
    for run in runs:
        assert run["source"]["entry_point"] == str((repo / "flows.py").resolve())
        assert run["source"]["git_commit"] == commit and run["source"]["git_dirty"] is False


def test_a_script_and_the_cli_share_one_cache(tmp_path: Path) -> None:
    """`python flows.py` and `loopline pipelines run flows:flow` run the same steps: the
    second reuses what the first computed."""
    (tmp_path / "flows.py").write_text(FLOW + "\nif __name__ == '__main__':\n    flow(x=3)\n")
    env = {**os.environ, "LOOPLINE_HOME": str(tmp_path / "home")}
    for name in ("LOOPLINE_STORE_URI", "LOOPLINE_ARTIFACTS_URI", "LOOPLINE_ENTRY_POINT"):
        env.pop(name, None)
    script = subprocess.run(
        [sys.executable, "flows.py"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert script.returncode == 0, script.stderr
    done = subprocess.run(
        [sys.executable, "-m", "loopline", "pipelines", "run", "flows:flow", "-p", "x=3", "--json"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [s["status"] for s in json.loads(done.stdout)["steps"]] == ["CACHED"]
