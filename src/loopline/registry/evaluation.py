"""`evaluate`: a model version's quality, per slice and latency on a dataset, stored with
the version (metrics, plots as artifacts, and a lineage edge from the dataset)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopline.artifacts import BlobStore
from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.errors import InvalidInput, NotFound
from loopline.core.registry import Evaluation, ModelVersion
from loopline.lineage import LineageService
from loopline.models import LoadedModel
from loopline.models.metrics import sliced_metrics, task_metrics
from loopline.models.plots import evaluation_plots
from loopline.profiling.fingerprint import table_digest
from loopline.services import Registry
from loopline.store import MetadataStore

LATENCY_ROWS = 50  # single-row predictions timed for the per-row latency


@dataclass(frozen=True)
class Predictions:
    """What a model said about each row of a dataset: the paired tests of gates need it."""

    truth: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray | None
    classes: list[Any] | None


def model_inputs(loaded: LoadedModel, data: pd.DataFrame, target: str) -> pd.DataFrame:
    if target not in data.columns:
        raise InvalidInput(
            f"target column {target!r} is not in the data (columns: {list(data.columns)[:20]})"
        )
    names = loaded.signature.input_names if loaded.signature is not None else []
    return data[names] if names else data.drop(columns=[target])


def predict_all(loaded: LoadedModel, data: pd.DataFrame, target: str, task: str) -> Predictions:
    inputs = model_inputs(loaded, data, target)
    predicted = loaded.predict(inputs).iloc[:, 0].to_numpy()
    proba = None
    if task == "classification" and loaded.classes is not None:
        try:
            proba = loaded.predict_proba(inputs).to_numpy()
        except InvalidInput:
            proba = None
    return Predictions(data[target].to_numpy(), predicted, proba, loaded.classes)


def measure_latency(loaded: LoadedModel, inputs: pd.DataFrame) -> dict[str, float]:
    """Per-row latency (single-row calls) and per-batch latency (one call on every row)."""
    rows = [inputs.iloc[[i]] for i in range(min(LATENCY_ROWS, len(inputs)))]
    loaded.predict(rows[0])  # warm-up
    single = []
    for row in rows:
        start = time.perf_counter()
        loaded.predict(row)
        single.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    loaded.predict(inputs)
    batch_ms = (time.perf_counter() - start) * 1000
    return {
        "row_p50_ms": statistics.median(single),
        "row_p95_ms": float(np.percentile(single, 95)),
        "batch_ms": batch_ms,
        "batch_rows": float(len(inputs)),
        "batch_us_per_row": batch_ms * 1000 / max(len(inputs), 1),
    }


class EvaluationService:
    def __init__(
        self, store: MetadataStore, blobs: BlobStore, *, registry: Registry, lineage: LineageService
    ) -> None:
        self._store = store
        self._blobs = blobs
        self.principal = registry.principal
        self._registry = registry
        self._lineage = lineage

    def evaluate(
        self,
        uri: str,
        data: pd.DataFrame,
        target: str,
        *,
        task: str | None = None,
        slices: Sequence[str] = (),
        dataset_name: str = "evaluation",
        trust: bool = False,
        trusted_types: Sequence[str] = (),
    ) -> Evaluation:
        """Evaluate the model at `uri` on `data` and store the result with the version."""
        version = self._registry.resolve(uri)
        self._registry.require_model_role(version.model, Role.EDITOR)
        loaded = self._registry.load(uri, trust=trust, trusted_types=trusted_types)
        return self.evaluate_loaded(
            version, loaded, data, target, task=task, slices=slices, dataset_name=dataset_name
        )[0]

    def evaluate_loaded(
        self,
        version: ModelVersion,
        loaded: LoadedModel,
        data: pd.DataFrame,
        target: str,
        *,
        task: str | None = None,
        slices: Sequence[str] = (),
        dataset_name: str = "evaluation",
    ) -> tuple[Evaluation, Predictions]:
        """Evaluate an already loaded version, store the result, and return the per-row
        predictions too (promotion gates compare them)."""
        evaluation, predictions = self.measure(loaded, data, target, task=task, slices=slices)
        digest = table_digest(data)
        result = {
            "metrics": evaluation["metrics"],
            "slices": evaluation["slices"],
            "latency": evaluation["latency"],
            "artifacts": {
                name: self._blobs.put_bytes(png).digest for name, png in evaluation["plots"].items()
            },
        }
        evaluation_id = self._store.evaluations.add_evaluation(
            version.model,
            version.version,
            dataset_digest=digest,
            dataset_name=dataset_name,
            task=evaluation["task"],
            result=result,
            created_at=now_ms(),
            created_by=self.principal.name,
        )
        self._store.registry.add_version_metrics(
            version.model, version.version, f"evaluation:{evaluation_id}", evaluation["metrics"]
        )
        if version.digest is not None:
            self._lineage.link(
                ("dataset", digest), "evaluated", ("model_version", version.digest), dataset_name
            )
        return self.get(version.model, version.version, evaluation_id), predictions

    def measure(
        self,
        loaded: LoadedModel,
        data: pd.DataFrame,
        target: str,
        *,
        task: str | None = None,
        slices: Sequence[str] = (),
        plots: bool = True,
    ) -> tuple[dict[str, Any], Predictions]:
        """Metrics, slices, latency (and plots) of a loaded model on `data`, unstored."""
        task = task or loaded.metadata.task or "regression"
        if task not in ("classification", "regression"):
            raise InvalidInput(f"task must be classification or regression, got {task!r}")
        missing = [s for s in slices if s not in data.columns]
        if missing:
            raise InvalidInput(f"slice columns {missing} are not in the data")
        if data.empty:
            raise InvalidInput("the evaluation data has no rows")
        p = predict_all(loaded, data, target, task)
        result = {
            "task": task,
            "metrics": task_metrics(task, p.truth, p.predicted, p.proba, p.classes),
            "slices": sliced_metrics(task, data, slices, p.truth, p.predicted, p.proba, p.classes),
            "latency": measure_latency(loaded, model_inputs(loaded, data, target)),
            "plots": evaluation_plots(task, p.truth, p.predicted, p.proba, p.classes) if plots else {},
        }
        return result, p

    def list(self, name: str, version: int) -> list[Evaluation]:
        version_ = self._registry.get_version(name, version)
        return [
            _evaluation(version_.model, version_.version, e)
            for e in self._store.evaluations.list_evaluations(version_.model, version_.version)
        ]

    def get(self, name: str, version: int, evaluation_id: int) -> Evaluation:
        for evaluation in self.list(name, version):
            if evaluation.id == evaluation_id:
                return evaluation
        raise NotFound(f"models:/{name}/{version} has no evaluation {evaluation_id}")

    def plot(self, evaluation: Evaluation, name: str) -> bytes:
        digest = evaluation.artifacts.get(name)
        if digest is None:
            raise NotFound(
                f"evaluation {evaluation.id} has no plot {name!r} (it has {sorted(evaluation.artifacts)})"
            )
        return self._blobs.read(digest, name)


def _evaluation(model: str, version: int, row: dict[str, Any]) -> Evaluation:
    return Evaluation(
        id=row["id"],
        model=model,
        version=version,
        dataset_name=row["dataset_name"],
        dataset_digest=row["dataset_digest"],
        task=row["task"],
        metrics=row.get("metrics", {}),
        slices=row.get("slices", {}),
        latency=row.get("latency", {}),
        artifacts=row.get("artifacts", {}),
        created_at=row["created_at"],
    )
