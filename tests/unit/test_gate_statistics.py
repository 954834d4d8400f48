"""The statistics behind the better-than-current gate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from loopline.registry.evaluation import Predictions
from loopline.registry.gates import BetterThanCurrent, _weighted_metric


@pytest.fixture
def predictions() -> Predictions:
    generator = np.random.default_rng(7)
    truth = generator.integers(0, 2, 400)
    score = np.round(np.clip(truth * 0.3 + generator.random(400) * 0.7, 0, 1), 2)  # ties on purpose
    return Predictions(truth, (score > 0.5).astype(int), np.column_stack([1 - score, score]), [0, 1])


@pytest.mark.parametrize(
    ("metric", "reference"),
    [("roc_auc", None), ("f1", f1_score), ("precision", precision_score), ("recall", recall_score)],
)
def test_weighted_resample_metrics_equal_recomputing_them(
    predictions: Predictions, metric: str, reference: object
) -> None:
    weighted = _weighted_metric(metric, predictions)
    assert weighted is not None
    generator = np.random.default_rng(3)
    for _ in range(20):
        rows = generator.integers(0, len(predictions.truth), len(predictions.truth))
        weights = np.bincount(rows, minlength=len(predictions.truth)).astype(float)
        truth, predicted = predictions.truth[rows], predictions.predicted[rows]
        assert predictions.proba is not None
        expected = (
            roc_auc_score(truth, predictions.proba[rows, 1])
            if reference is None
            else reference(truth, predicted)  # type: ignore[operator]
        )
        assert weighted(weights) == pytest.approx(expected, abs=1e-12)


def test_mcnemar_counts_only_the_rows_where_the_models_disagree(predictions: Predictions) -> None:
    gate = BetterThanCurrent()
    better = Predictions(predictions.truth, predictions.truth.copy(), None, [0, 1])  # always right
    p_value, detail = gate._mcnemar(better, predictions)
    wrong = int((predictions.predicted != predictions.truth).sum())
    assert detail == {"candidate_only_right": wrong, "current_only_right": 0}
    assert p_value == pytest.approx(0.5**wrong)
    same_p, same_detail = gate._mcnemar(predictions, predictions)
    assert same_p == 1.0 and same_detail == {"candidate_only_right": 0, "current_only_right": 0}
