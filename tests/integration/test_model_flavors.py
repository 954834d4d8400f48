"""Every flavor saves natively, loads safely and predicts through one interface."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from loopline.core.errors import (
    ArtifactCorrupted,
    ContractViolation,
    InvalidInput,
    SignatureMismatch,
    UntrustedModel,
)
from loopline.models import check_flavor, load_model_dir, read_metadata, save_model
from loopline.models.flavors import LoadOptions, Predictor, flavor_named, flavors
from loopline.models.flavors.pyfunc import PythonFunctionFlavor
from loopline.models.package import METADATA_FILE


@pytest.fixture(scope="module")
def classification() -> tuple[pd.DataFrame, pd.Series]:
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features = features.iloc[:, :6].rename(columns=lambda c: c.replace(" ", "_"))
    return features, target


def _sklearn(x: pd.DataFrame, y: pd.Series) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)


def _xgboost(x: pd.DataFrame, y: pd.Series) -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=10).fit(x, y)


def _lightgbm(x: pd.DataFrame, y: pd.Series) -> Any:
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y)


def _onnx(x: pd.DataFrame, y: pd.Series) -> Any:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    return to_onnx(pipeline, x.to_numpy(np.float32)[:1], options={id(pipeline): {"zipmap": False}})


def _pytorch(x: pd.DataFrame, y: pd.Series) -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(x.shape[1], 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


class Threshold:
    """A hand-written classifier, only storable as a pickle."""

    classes_ = np.array([0, 1])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (frame.iloc[:, 0] < 15).astype(int).to_numpy()

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.predict(frame).astype(float)
        return np.column_stack([1 - p, p])


def _pyfunc(x: pd.DataFrame, y: pd.Series) -> Any:
    return Threshold()


BUILDERS: dict[str, Callable[[pd.DataFrame, pd.Series], Any]] = {
    "sklearn": _sklearn,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "onnx": _onnx,
    "pytorch": _pytorch,
    "python_function": _pyfunc,
}


@pytest.mark.parametrize("flavor", BUILDERS)
def test_round_trip_predicts_like_the_original(
    flavor: str, classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    x, y = classification
    model = BUILDERS[flavor](x, y)
    extra = {"classes": [0, 1]} if flavor == "pytorch" else {}
    metadata = save_model(model, tmp_path, input_example=x.head(20), **extra)

    assert metadata.flavor == flavor
    assert metadata.task == "classification" and list(metadata.classes or []) == [0, 1]
    assert metadata.signature is not None and metadata.signature.input_names == list(x.columns)
    assert all(len(f.sha256) == 64 and f.size > 0 for f in metadata.files.values())
    package = {"sklearn": "scikit-learn", "python_function": "cloudpickle"}.get(
        flavor, flavor.replace("pytorch", "torch")
    )
    assert any(r.split("==")[0].startswith(package) for r in metadata.requirements)  # xgboost-cpu too
    assert read_metadata(tmp_path) == metadata

    loaded = load_model_dir(tmp_path, LoadOptions(trust=flavor == "python_function"))
    predicted = loaded.predict(x.head(50))
    proba = loaded.predict_proba(x.head(50))
    assert list(predicted.columns) == ["prediction"] and len(predicted) == 50
    assert list(proba.columns) == ["0", "1"]
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (predicted["prediction"].to_numpy() == proba.to_numpy().argmax(axis=1)).all()
    if flavor in ("sklearn", "xgboost", "lightgbm", "python_function"):
        assert (predicted["prediction"].to_numpy() == model.predict(x.head(50))).all()
    records = loaded.predict(x.head(2).to_dict("records"))
    assert records["prediction"].tolist() == predicted["prediction"].head(2).tolist()
    native = loaded.native  # the flavor's own object, for what loopline's interface leaves out
    assert native is not None  # a LightGBM Booster, an ONNX session, a torch module...
    if flavor in ("sklearn", "xgboost", "python_function"):
        assert type(native).__name__ == type(model).__name__


def test_a_regressor_has_no_probabilities(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(x, y)
    metadata = save_model(model, tmp_path, input_example=x.head(), task="regression")
    loaded = load_model_dir(tmp_path)
    assert metadata.task == "regression" and metadata.classes is None
    assert np.allclose(loaded.predict(x.head(10))["prediction"], model.predict(x.head(10)))
    with pytest.raises(InvalidInput, match="gives no class probabilities"):
        loaded.predict_proba(x.head(1))


def test_a_pickle_does_not_load_without_trust(
    classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    x, _ = classification
    save_model(Threshold(), tmp_path, input_example=x.head())
    with pytest.raises(UntrustedModel, match="trust=True"):
        load_model_dir(tmp_path)


def test_scikit_learn_types_beyond_the_reviewed_list_need_naming(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = pd.DataFrame({"a": [0.5, -1.0, 2.0, -3.0], "b": [1.0, 2.0, 3.0, 4.0]})
    model = make_pipeline(FunctionTransformer(abs), LogisticRegression()).fit(x, [0, 1, 0, 1])
    with pytest.raises(UntrustedModel, match=r"\['builtins.abs'\]"):
        save_model(model, tmp_path / "a", input_example=x)  # saving loads it back, so it says so now
    save_model(model, tmp_path / "b", input_example=x, trusted_types=["builtins.abs"])
    assert read_metadata(tmp_path / "b").options["types_needing_trust"] == ["builtins.abs"]
    with pytest.raises(UntrustedModel, match=r"builtins\.abs"):
        load_model_dir(tmp_path / "b")  # what the file lists is never trusted on its own
    loaded = load_model_dir(tmp_path / "b", LoadOptions(trusted_types=("builtins.abs",)))
    assert loaded.predict(x)["prediction"].tolist() == model.predict(x).tolist()


def test_tampered_and_truncated_files_are_refused(
    classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    x, y = classification
    save_model(_sklearn(x, y), tmp_path, input_example=x.head())
    path = tmp_path / "model.skops"
    original = path.read_bytes()
    path.write_bytes(original[:-10])
    with pytest.raises(
        ArtifactCorrupted, match=r"'model\.skops' is missing, or does not match its recorded sha256"
    ):
        load_model_dir(tmp_path)
    path.write_bytes(original[:100] + b"X" + original[101:])
    with pytest.raises(ArtifactCorrupted):
        load_model_dir(tmp_path)
    path.unlink()
    with pytest.raises(ArtifactCorrupted, match="missing"):
        load_model_dir(tmp_path)


def test_an_unknown_flavor_is_refused(classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path) -> None:
    x, y = classification
    save_model(_sklearn(x, y), tmp_path, input_example=x.head())
    description = json.loads((tmp_path / METADATA_FILE).read_text())
    description["flavor"] = "mystery"
    (tmp_path / METADATA_FILE).write_text(json.dumps(description))
    with pytest.raises(InvalidInput, match="unknown model flavor 'mystery'"):
        load_model_dir(tmp_path)


def test_prediction_input_is_checked_against_the_signature(
    classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    x, y = classification
    save_model(_sklearn(x, y), tmp_path, input_example=x.head())
    loaded = load_model_dir(tmp_path)
    with pytest.raises(SignatureMismatch, match="missing columns"):
        loaded.predict(x.drop(columns=[x.columns[0]]).head())
    with pytest.raises(SignatureMismatch, match="unexpected columns"):
        loaded.predict(x.assign(extra=1).head())
    with pytest.raises(SignatureMismatch, match="is string where the model expects double"):
        loaded.predict(x.head().assign(**{x.columns[0]: "high"}))
    with pytest.raises(SignatureMismatch, match="missing values"):
        loaded.predict(x.head().assign(**{x.columns[1]: np.nan}))


def test_torch_state_dict_loads_weights_only_into_a_module_the_caller_builds(
    classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    x, y = classification
    module = _pytorch(x, y)
    save_model(module, tmp_path, input_example=x.head(), classes=[0, 1])
    scripted = load_model_dir(tmp_path)
    from_state = load_model_dir(tmp_path, LoadOptions(module_factory=lambda: _pytorch(x, y)))
    assert np.allclose(scripted.predict_proba(x.head(20)), from_state.predict_proba(x.head(20)), atol=1e-6)


def test_onnx_export_of_a_scikit_learn_pipeline_matches_and_serves(
    classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = classification
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    metadata = save_model(pipeline, tmp_path, input_example=x.head(100), onnx=True)
    assert metadata.options["onnx"]["max_abs_difference"] < 1e-4
    native = load_model_dir(tmp_path)
    onnx = load_model_dir(tmp_path, LoadOptions(onnx=True))
    assert (native.predict(x)["prediction"] == onnx.predict(x)["prediction"]).mean() > 0.999
    assert np.allclose(native.predict_proba(x), onnx.predict_proba(x), atol=1e-4)


def test_onnx_export_refuses_text_columns(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": ["x", "y", "x", "y"]})
    model = LogisticRegression().fit(frame[["a"]], [0, 1, 0, 1])
    with pytest.raises(InvalidInput, match=r"numeric columns only; \['b'\]"):
        save_model(model, tmp_path, input_example=frame, onnx=True)


def test_an_example_the_model_cannot_take_is_refused_when_logging(
    classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    x, y = classification
    with pytest.raises(InvalidInput, match=r"cannot predict its input_example.*without the target"):
        save_model(_sklearn(x, y), tmp_path, input_example=x.assign(target=y).head())


@pytest.mark.parametrize("flavor", BUILDERS)
def test_every_built_in_flavor_keeps_the_contract(
    flavor: str, classification: tuple[pd.DataFrame, pd.Series]
) -> None:
    x, y = classification
    check_flavor(flavor_named(flavor), BUILDERS[flavor](x, y), x.head(20))


class _CarelessFlavor(PythonFunctionFlavor):
    """Stores a pickle like the python_function flavor, but loads it without asking for trust."""

    name = "careless"

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor:
        return super().load(directory, options, LoadOptions(trust=True))


def test_a_flavor_that_loads_pickles_without_trust_breaks_the_contract(
    classification: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = classification
    with pytest.raises(ContractViolation, match="without trust=True"):
        check_flavor(_CarelessFlavor(), Threshold(), x.head(20))


PLUGIN = '''
import json
import numpy as np

class Cutoff:
    """Class 1 where one column is below a cutoff."""
    classes_ = np.array([0, 1])
    def __init__(self, column, cutoff):
        self.column, self.cutoff = column, cutoff
    def predict(self, frame):
        return (frame[self.column].to_numpy() < self.cutoff).astype(int)
    def predict_proba(self, frame):
        p = self.predict(frame).astype(float)
        return np.column_stack([1 - p, p])

class CutoffFlavor:
    name = "cutoff"
    packages = ("numpy",)
    def matches(self, model):
        return isinstance(model, Cutoff)
    def save(self, model, directory, input_example):
        from loopline.models.flavors import SavedModel
        (directory / "cutoff.json").write_text(json.dumps({"column": model.column, "cutoff": model.cutoff}))
        return SavedModel(classes=[0, 1])
    def load(self, directory, options, load):
        found = json.loads((directory / "cutoff.json").read_text())
        model = Cutoff(found["column"], found["cutoff"])
        model.for_arrays = lambda: None
        model.classes = [0, 1]
        return model
'''


def test_flavors_of_installed_packages_join_through_entry_points(
    classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cutoff_flavor.py").write_text(PLUGIN)
    info = tmp_path / "cutoff_flavor-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cutoff-flavor\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[loopline.flavors]\ncutoff = cutoff_flavor:CutoffFlavor\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    flavors.cache_clear()
    try:
        import cutoff_flavor  # type: ignore[import-not-found]

        x, _ = classification
        model = cutoff_flavor.Cutoff(x.columns[0], 15.0)
        assert list(flavors())[-2:] == ["cutoff", "python_function"]  # before the pickle
        metadata = save_model(model, tmp_path / "model", input_example=x.head(20))
        assert metadata.flavor == "cutoff" and list(metadata.files) == ["cutoff.json"]
        loaded = load_model_dir(tmp_path / "model")
        assert (loaded.predict(x.head(50))["prediction"].to_numpy() == model.predict(x.head(50))).all()
        check_flavor(flavors()["cutoff"], model, x.head(20))
    finally:
        flavors.cache_clear()


def _craft(directory: Path, field: str, value: int) -> None:
    """Rewrite one node array of the saved tree, as an attacker would before registering it."""
    import zipfile

    path = directory / "model.skops"
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for name, data in members.items():
        if name.endswith(".npy"):
            array = np.load(io.BytesIO(data), allow_pickle=False)
            if array.dtype.names and field in array.dtype.names:
                array[field][0] = value
                buffer = io.BytesIO()
                np.save(buffer, array, allow_pickle=False)
                members[name] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(("field", "value"), [("left_child", 10**6), ("right_child", 0), ("feature", 99)])
def test_a_crafted_tree_is_refused_before_it_can_predict(
    classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path, field: str, value: int
) -> None:
    from sklearn.tree import DecisionTreeClassifier

    from loopline.models.flavors.sklearn import SklearnFlavor

    x, y = classification
    metadata = save_model(
        DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y), tmp_path, input_example=x.head()
    )
    _craft(tmp_path, field, value)
    with pytest.raises(InvalidInput, match="tree of the scikit-learn model is malformed at node 0"):
        SklearnFlavor().load(
            tmp_path, metadata.options, LoadOptions()
        )  # the hashes would match a crafted upload


def test_honest_forests_and_boosted_trees_pass_the_tree_check(
    classification: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    x, y = classification
    for i, model in enumerate(
        (
            GradientBoostingClassifier(n_estimators=5),
            HistGradientBoostingClassifier(max_iter=5),
            _sklearn(x, y),
        )
    ):
        directory = tmp_path / str(i)
        save_model(model.fit(x, y), directory, input_example=x.head())
        assert load_model_dir(directory).predict(x.head(5)).shape == (5, 1)


def test_loading_a_scikit_learn_model_does_not_import_torch() -> None:
    """skops lists scikit-learn's estimators on import, walking every subpackage, the torch
    shim included: a second of importing torch that a scikit-learn model never needed."""
    probe = """
import sys
from loopline.models.flavors.sklearn import _skops_io
assert "torch" not in sys.modules
_skops_io()
print("torch" in sys.modules)
import sklearn.externals.array_api_compat.torch  # still importable when wanted
print("torch" in sys.modules)
"""
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.split() == ["False", "True"]
