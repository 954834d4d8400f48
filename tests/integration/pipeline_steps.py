"""Steps and pipelines the pipeline tests run: at module level, so worker processes and
Ray tasks import them by name. Each step appends to a journal file (LOOPLINE_TEST_JOURNAL)
so tests see which steps really ran, in whichever process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import loopline as ll


def journal(entry: str) -> None:
    with open(os.environ["LOOPLINE_TEST_JOURNAL"], "a") as out:
        out.write(f"{entry} {os.getpid()}\n")


def entries() -> list[str]:
    path = Path(os.environ["LOOPLINE_TEST_JOURNAL"])
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


@ll.step
def load(rows: int, seed: int = 0) -> pd.DataFrame:
    journal("load")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    return pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=(x[:, 0] + x[:, 1] > 0).astype(int))


@ll.step
def summarize(frame: pd.DataFrame) -> dict[str, Any]:
    journal("summarize")
    return {"rows": len(frame), "positive_share": float(frame["y"].mean())}


@ll.step
def train(frame: pd.DataFrame, c: float = 1.0) -> ll.ModelVersion:
    from sklearn.linear_model import LogisticRegression

    journal("train")
    print(f"training on {len(frame)} rows")
    features = frame[["a", "b", "c"]]
    model = LogisticRegression(C=c).fit(features, frame["y"])
    run = ll.active_run()
    assert run is not None
    run.log_metric("train_accuracy", model.score(features, frame["y"]))
    return run.log_model(model, "pipeline-model", input_example=features.head())


@ll.step
def scores(version: ll.ModelVersion, frame: pd.DataFrame) -> np.ndarray:
    journal("scores")
    model = ll.load_model(version.uri)
    return model.predict_proba(frame[["a", "b", "c"]]).to_numpy()[:, 1]


@ll.pipeline
def training(rows: int = 200, c: float = 1.0):  # type: ignore[no-untyped-def]
    frame = load(rows)
    summarize(frame)
    version = train(frame, c=c)
    return scores(version, frame)


# faults -----------------------------------------------------------------------------------


@ll.step
def flaky(frame: pd.DataFrame, failures: int) -> int:
    """Fails its first `failures` attempts of this pipeline run."""
    journal("flaky")
    if entries().count("flaky") <= failures:
        raise ConnectionError("the feature service did not answer")
    return len(frame)


@ll.step(retries=2, retry_delay=0.01, backoff=2.0)
def flaky_with_retries(frame: pd.DataFrame, failures: int) -> int:
    return flaky.fn(frame, failures)


@ll.pipeline
def retried(failures: int = 2):  # type: ignore[no-untyped-def]
    return flaky_with_retries(load(50), failures)


@ll.step
def breaks_unless_fixed(frame: pd.DataFrame) -> int:
    journal("breaks_unless_fixed")
    if not Path(os.environ["LOOPLINE_TEST_JOURNAL"] + ".fixed").exists():
        raise ValueError("column 'a' has gone missing upstream")
    return len(frame)


@ll.step(cache=False)
def uncached_load(rows: int) -> pd.DataFrame:
    return load.fn(rows)


@ll.pipeline
def fragile(rows: int = 50):  # type: ignore[no-untyped-def]
    frame = uncached_load(rows)
    checked = breaks_unless_fixed(frame)
    summarize(frame)  # independent of the failing step: still runs
    return after(checked)


@ll.step
def after(value: int) -> int:
    journal("after")
    return value + 1


@ll.step(timeout=1.0)
def hangs() -> int:
    journal("hangs")
    time.sleep(120)
    return 1


@ll.pipeline
def hanging():  # type: ignore[no-untyped-def]
    return after(hangs())


@ll.step
def dies() -> int:
    journal("dies")
    os.kill(os.getpid(), signal.SIGKILL)
    return 1


@ll.pipeline
def dying():  # type: ignore[no-untyped-def]
    return dies()


@ll.step
def returns_a_socket() -> Any:
    import socket

    return socket.socket()


@ll.pipeline
def unstorable():  # type: ignore[no-untyped-def]
    return returns_a_socket()


# parallelism: two steps that can only finish if they run at the same time -------------------


@ll.step
def meet(me: str, other: str, directory: str) -> str:
    journal(f"meet-{me}")
    Path(directory, me).touch()
    deadline = time.monotonic() + 60
    while not Path(directory, other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never ran beside {me}")
        time.sleep(0.05)
    return me


@ll.step
def both(first: str, second: str) -> list[str]:
    return [first, second]


@ll.pipeline
def rendezvous(directory: str):  # type: ignore[no-untyped-def]
    return both(meet("left", "right", directory), meet("right", "left", directory))


# hyperparameter search --------------------------------------------------------------------


def logistic_objective(frame: pd.DataFrame) -> Any:
    from sklearn.linear_model import LogisticRegression

    def objective(trial: Any) -> tuple[float, Any]:
        c = trial.suggest_float("c", 1e-3, 10.0, log=True)
        features, target = frame[["a", "b", "c"]], frame["y"]
        model = LogisticRegression(C=c).fit(features[:150], target[:150])
        return model.score(features[150:], target[150:]), model

    return objective


@ll.step
def search(frame: pd.DataFrame, trials: int) -> ll.ModelVersion:
    result = ll.tune(
        logistic_objective(frame),
        n_trials=trials,
        seed=0,
        register="tuned",
        input_example=frame[["a", "b", "c"]][:5],
    )
    assert result.model_version is not None
    return result.model_version


@ll.pipeline
def tuned(trials: int = 5):  # type: ignore[no-untyped-def]
    return search(load(300), trials)


def pruned_objective(trial: Any) -> float:
    """The first five trials climb; later ones report a poor start and are pruned."""
    x = trial.suggest_float("x", 0.5, 1.0)
    for step in range(3):
        trial.report(x if trial.number < 5 else -1.0, step)
        if trial.should_prune():
            raise __import__("optuna").TrialPruned()
    if x > 0.99:
        raise RuntimeError("diverged")
    return x


# jobs run by workers ---------------------------------------------------------------------


@ll.step(cache=False)
def count_once(n: int) -> int:
    journal(f"tally-{n}")
    return n


@ll.pipeline
def tally(n: int = 0):  # type: ignore[no-untyped-def]
    return count_once(n)


@ll.step(cache=False)
def slow_the_first_time(marker: str) -> str:
    """Sleeps far past any lease on its first run (the worker is killed meanwhile)."""
    journal("slow")
    if not Path(marker).exists():
        Path(marker).touch()
        time.sleep(300)
    return "done"


@ll.pipeline
def slow(marker: str = ""):  # type: ignore[no-untyped-def]
    return slow_the_first_time(marker)


# the retraining loop's pipeline ----------------------------------------------------------


def concept(rows: int, seed: int, sign: float) -> pd.DataFrame:
    """y = a + sign * b > 0; c holds small whole numbers (as floats), as a count would."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame["c"] = rng.integers(0, 5, rows).astype(float)
    return frame.assign(y=(frame["a"] + sign * frame["b"] > 0).astype(int))


@ll.step
def fit_churn(dataset: str, c: float, integer_c: bool, slow_trees: int = 0) -> ll.ModelVersion:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    frame = ll.datasets.get(dataset).to_pandas()
    features = frame[["a", "b", "c"]]
    if integer_c:  # a training/serving skew: the model now insists on whole numbers
        features = features.assign(c=features["c"].round().astype("int64"))
    model = (  # a forest of hundreds of trees: as accurate, tens of milliseconds slower per request
        RandomForestClassifier(n_estimators=slow_trees, max_depth=6, random_state=0)
        if slow_trees
        else LogisticRegression(C=c)
    ).fit(features, frame["y"])
    run = ll.active_run()
    assert run is not None
    return run.log_model(model, "churn", input_example=features.head())


@ll.pipeline
def retrain_churn(dataset: str = "", c: float = 1.0, integer_c: bool = False, slow_trees: int = 0):  # type: ignore[no-untyped-def]
    return fit_churn(dataset, c, integer_c, slow_trees)
