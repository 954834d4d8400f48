"""`loopline.autolog()` with the real libraries, on a real store (and through a real server)."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
import pytest
import torch
import xgboost
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import loopline as ll
from loopline import _sdk
from loopline.artifacts import BlobStore
from loopline.autolog._registry import PATCHES
from loopline.core.entities import Run, RunStatus
from loopline.profiling.fingerprint import table_digest
from loopline.store import MetadataStore
from loopline.tracking.active_run import ActiveRun
from loopline.wiring.backends import Backends, bootstrap_admin
from tests.integration.api_helpers import running_api

# An autolog warning where none is expected fails the test: it escapes the fit it broke.
pytestmark = pytest.mark.filterwarnings("error:loopline autolog:RuntimeWarning")


@pytest.fixture
def sdk(mode: str, store_url: str, store: MetadataStore, blobs: BlobStore, tmp_path: Path) -> Iterator[None]:
    """The SDK on a new store: in process, or through a real server on it."""
    try:
        if mode == "remote":
            backends = Backends(store, blobs)
            secret = bootstrap_admin(backends)
            with running_api(backends) as url:
                ll.configure(uri=url, token=secret)
                yield
        else:
            ll.configure(store_uri=store_url, artifacts_uri=str(tmp_path / "artifacts"))
            yield
    finally:
        _sdk.reset()


@pytest.fixture
def autologging(sdk: None) -> Iterator[None]:
    ll.autolog()
    yield
    ll.autolog(disable=True)


def classification(rows: int = 120) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    features = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["age", "spend", "visits"])
    target = pd.Series((features["age"] + 0.5 * features["spend"] > 0).astype(int), name="churn")
    return features, target


def runs() -> list[Run]:
    return list(ll.search_runs())


def only_run() -> Run:
    found = runs()
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def steps(run: Run, key: str) -> list[int]:
    return [m.step for m in ll.get_metric_history(run.id, key)]


def importance(run: Run) -> pd.DataFrame:
    return pd.read_parquet(
        io.BytesIO(ll.tracking_service().read_artifact(run.id, "feature_importance.parquet"))
    )


# scikit-learn ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["local", "remote"], indirect=True)
def test_a_fit_logs_params_training_metrics_the_model_and_its_data_in_a_run_of_its_own(
    autologging: None,
) -> None:
    features, target = classification()
    estimator = LogisticRegression(C=0.5, max_iter=200)

    assert estimator.fit(features, target) is estimator

    run = only_run()
    assert run.name == "LogisticRegression" and run.status is RunStatus.FINISHED
    assert run.params["C"] == "0.5" and run.params["max_iter"] == "200"
    assert set(run.metrics) == {"training_accuracy_score", "training_f1_score", "training_log_loss"}
    assert run.metrics["training_accuracy_score"] == accuracy_score(target, estimator.predict(features))
    assert ll.tracking_service().inputs(run.id) == [("training_data", table_digest(features))]
    [version] = ll.registry_service().list_versions("logisticregression")
    assert version.run_id == run.id and version.flavor == "sklearn"
    assert len(version.model_json["input_example"]) == 5
    assert [c["name"] for c in version.model_json["signature"]["inputs"]["columns"]] == list(features.columns)
    loaded = ll.load_model(version.uri)
    assert list(loaded.predict(features.head(5))["prediction"]) == list(estimator.predict(features.head(5)))


def test_inside_an_active_run_it_logs_into_that_run(autologging: None) -> None:
    features = classification()[0]
    with ll.start_run("churn", run_name="mine") as run:
        LinearRegression().fit(features, features["age"] * 2.0)
    stored = only_run()
    assert stored.id == run.id and stored.name == "mine"
    assert {"training_r2_score", "training_mean_squared_error", "training_mean_absolute_error"} <= set(
        stored.metrics
    )
    assert stored.metrics["training_r2_score"] == pytest.approx(1.0)


def test_a_pipeline_and_a_search_log_once_each_not_their_inner_fits(autologging: None) -> None:
    features, target = classification()
    make_pipeline(StandardScaler(), LogisticRegression()).fit(features, target)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression()), {"logisticregression__C": [0.1, 1.0]}, cv=3
    )
    search.fit(features, target)

    assert sorted(r.name for r in runs()) == ["GridSearchCV", "Pipeline"]
    found = {r.name: r for r in runs()}
    assert found["GridSearchCV"].params["best_logisticregression__C"] == str(
        search.best_params_["logisticregression__C"]
    )
    assert found["GridSearchCV"].metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert [m.name for m in ll.registry_service().list_models()] == ["gridsearchcv", "pipeline"]
    assert len(ll.registry_service().list_versions("gridsearchcv")) == 1


def test_options_name_the_model_or_log_none(sdk: None) -> None:
    features, target = classification()
    try:
        ll.autolog(registered_model_name="churn-model")
        LogisticRegression().fit(features, target)
        ll.autolog(log_models=False)
        LogisticRegression().fit(features, target)
    finally:
        ll.autolog(disable=True)
    assert len(runs()) == 2
    assert [m.name for m in ll.registry_service().list_models()] == ["churn-model"]
    assert len(ll.registry_service().list_versions("churn-model")) == 1


def test_disabling_puts_back_the_very_original_methods(sdk: None) -> None:
    originals = [
        vars(LogisticRegression)["fit"],
        vars(Pipeline)["fit"],
        vars(xgboost.XGBClassifier)["fit"],
        vars(lightgbm)["train"],
    ]
    ll.autolog()
    try:
        wrapped = [vars(LogisticRegression)["fit"], vars(Pipeline)["fit"]]
        assert wrapped[0] is not originals[0] and wrapped[0].__wrapped__ is originals[0]
        ll.autolog()  # twice: the same wrappers, not wrappers of wrappers
        assert [vars(LogisticRegression)["fit"], vars(Pipeline)["fit"]] == wrapped
    finally:
        ll.autolog(disable=True)
    restored = [
        vars(LogisticRegression)["fit"],
        vars(Pipeline)["fit"],
        vars(xgboost.XGBClassifier)["fit"],
        vars(lightgbm)["train"],
    ]
    assert all(now is before for now, before in zip(restored, originals, strict=True))
    LogisticRegression().fit(*classification())
    assert runs() == []


def test_a_library_imported_after_autolog_is_patched_at_its_import() -> None:
    code = (
        "import sys, loopline as ll; ll.autolog(); print('sklearn' in sys.modules); "
        "from sklearn.linear_model import LogisticRegression; "
        "from loopline.autolog._registry import PATCHES; print(PATCHES.is_patched(LogisticRegression, 'fit'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_a_failing_logging_step_only_warns_and_the_fit_returns_as_usual(
    autologging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("registry unreachable")

    monkeypatch.setattr(ActiveRun, "log_model", broken)
    features, target = classification()
    estimator = LogisticRegression()
    with pytest.warns(
        RuntimeWarning, match=r"^loopline autolog: could not log the model .*registry unreachable"
    ):
        assert estimator.fit(features, target) is estimator
    run = only_run()
    assert run.status is RunStatus.FINISHED and "training_accuracy_score" in run.metrics
    assert estimator.predict(features).shape == (len(features),)

    ll.autolog(silent=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert estimator.fit(features, target) is estimator
    assert [str(w.message) for w in caught if str(w.message).startswith("loopline autolog")] == []
    assert len(runs()) == 2


def test_an_error_of_the_fit_itself_propagates_and_fails_the_run(autologging: None) -> None:
    features, target = classification()
    features.iloc[3, 1] = np.nan
    with pytest.raises(ValueError, match="contains NaN") as raised:
        LogisticRegression().fit(features, target)
    assert type(raised.value) is ValueError
    run = only_run()
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "ValueError" in run.error
    assert run.params["C"] == "1.0"  # logged before the fit: the record of what was tried


# XGBoost and LightGBM -----------------------------------------------------------------------


def test_xgboost_logs_each_round_of_each_eval_set_and_the_feature_importance(autologging: None) -> None:
    features, target = classification(200)
    model = xgboost.XGBClassifier(n_estimators=6, max_depth=2, eval_metric="logloss")
    model.fit(features[:150], target[:150], eval_set=[(features[150:], target[150:])], verbose=False)

    run = only_run()
    assert run.name == "XGBClassifier" and run.params["n_estimators"] == "6"
    assert steps(run, "validation_0-logloss") == list(range(6))
    assert run.metrics["validation_0-logloss"] == pytest.approx(
        model.evals_result()["validation_0"]["logloss"][-1]
    )
    table = importance(run)
    assert list(table.columns) == ["feature", "importance"]
    assert list(table["feature"]) == list(features.columns)
    assert table["importance"].to_numpy() == pytest.approx(model.feature_importances_)
    assert model.callbacks is None  # the callback was lent for the fit only
    assert [v.run_id for v in ll.registry_service().list_versions("xgbclassifier")] == [run.id]

    xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(features, target), 3,
                  evals=[(xgboost.DMatrix(features, target), "train")], verbose_eval=False)  # fmt: skip
    native = next(r for r in runs() if r.name == "xgboost.train")
    assert steps(native, "train-logloss") == [0, 1, 2] and native.params["num_boost_round"] == "3"


def test_lightgbm_logs_each_round_of_each_eval_set_and_the_feature_importance(autologging: None) -> None:
    features, target = classification(200)
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1)
    model.fit(features[:150], target[:150], eval_X=(features[150:],), eval_y=(target[150:],))

    run = only_run()
    assert run.name == "LGBMClassifier" and run.params["n_estimators"] == "5"
    assert steps(run, "valid_0-binary_logloss") == list(range(5))
    table = importance(run)
    assert list(table["feature"]) == list(features.columns)
    assert list(table["importance"]) == [float(v) for v in model.feature_importances_]
    assert ll.registry_service().list_versions("lgbmclassifier")[0].run_id == run.id

    data = lightgbm.Dataset(features, target)
    lightgbm.train({"objective": "binary", "verbose": -1}, data, 4, valid_sets=[data], valid_names=["train"])
    native = next(r for r in runs() if r.name == "lightgbm.train")
    assert steps(native, "train-binary_logloss") == [0, 1, 2, 3]
    assert ll.tracking_service().inputs(native.id) == [("training_data", table_digest(features))]


# PyTorch ------------------------------------------------------------------------------------


def regression_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    inputs = torch.randn(64, 3, generator=generator)
    return inputs, inputs.sum(dim=1, keepdim=True)


def test_the_loop_logger_logs_every_n_steps_and_the_optimizer_once(sdk: None) -> None:
    torch.manual_seed(0)
    inputs, targets = regression_tensors()
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with ll.torch_logger(optimizer, every_n_steps=2) as logger:
        for step in range(6):
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            logger.log(step, loss=loss, batch_size=len(inputs))

    run = only_run()
    assert run.status is RunStatus.FINISHED and run.name == "training-loop"
    assert steps(run, "loss") == [0, 2, 4] and steps(run, "batch_size") == [0, 2, 4]
    assert {k: run.params[k] for k in ("optimizer", "lr", "momentum", "weight_decay")} == {
        "optimizer": "SGD", "lr": "0.05", "momentum": "0.9", "weight_decay": "0"
    }  # fmt: skip

    with pytest.raises(RuntimeError, match="diverged"), ll.torch_logger() as logger:
        logger.log(0, loss=1.0)
        raise RuntimeError("diverged")
    failed = next(r for r in runs() if r.id != run.id)
    assert failed.status is RunStatus.FAILED and failed.metrics == {"loss": 1.0}


def test_a_lightning_trainer_logs_hyperparameters_and_each_epochs_metrics(autologging: None) -> None:
    lightning = pytest.importorskip("lightning")

    class Regressor(lightning.LightningModule):
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(3, 1)

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*regression_tensors()), batch_size=16)
    trainer = lightning.Trainer(
        max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(Regressor(), loader, loader)

    run = only_run()
    assert run.name == "Regressor" and run.status is RunStatus.FINISHED
    assert run.params["lr"] == "0.05" and run.params["max_epochs"] == "3" and run.params["optimizer"] == "SGD"
    assert steps(run, "train_loss") == [0, 1, 2] and steps(run, "val_loss") == [0, 1, 2]
    assert run.metrics["val_loss"] == pytest.approx(float(trainer.callback_metrics["val_loss"]))
    assert sum(type(c).__name__ == "LooplineCallback" for c in trainer.callbacks) == 1
    assert PATCHES.is_patched(lightning.pytorch.Trainer, "__init__")
