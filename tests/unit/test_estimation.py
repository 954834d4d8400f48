"""Performance estimated without labels (CBPE), checked on generated data where the truth
is known: labels drawn from a fixed P(y | x), inputs shifted window after window, so the
model's real accuracy moves while the relation it learned does not."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from loopline.monitoring.estimation import Calibration, estimate


def _truth(x: np.ndarray) -> np.ndarray:
    """P(y = 1 | x): what never changes."""
    return 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1] + 0.8 * x[:, 0] * x[:, 2])))


def _draw(
    rng: np.random.Generator, rows: int, shift: float = 0.0, spread: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(0, 1, (rows, 3)) * spread + np.array([shift, -shift / 2, 0])
    return x, (rng.random(rows) < _truth(x)).astype(int)


@pytest.mark.parametrize(("shift", "spread"), [(0.0, 1.0), (0.8, 1.0), (-1.0, 1.0), (0.0, 0.4), (0.5, 2.0)])
def test_estimates_track_realized_metrics_under_covariate_shift(shift: float, spread: float) -> None:
    rng = np.random.default_rng(7)
    train_x, train_y = _draw(rng, 20_000)
    model = HistGradientBoostingClassifier(max_iter=60, learning_rate=0.3, early_stopping=False).fit(
        train_x, train_y
    )
    reference_x, reference_y = _draw(rng, 20_000)  # the labelled reference window
    calibration = Calibration.fit(model.predict_proba(reference_x), reference_y.astype(str), ["0", "1"])
    window_x, window_y = _draw(rng, 10_000, shift, spread)
    proba = model.predict_proba(window_x)
    predicted = proba.argmax(axis=1)
    estimated = estimate(calibration.apply(proba), predicted)
    assert estimated["accuracy"] == pytest.approx(accuracy_score(window_y, predicted), abs=0.02)
    assert estimated["f1"] == pytest.approx(f1_score(window_y, predicted), abs=0.03)
    assert estimated["roc_auc"] == pytest.approx(roc_auc_score(window_y, proba[:, 1]), abs=0.03)


def test_calibration_corrects_an_overconfident_model() -> None:
    rng = np.random.default_rng(8)
    x, y = _draw(rng, 20_000)
    honest = _truth(x)
    sharp = honest**4 / (honest**4 + (1 - honest) ** 4)  # far too sure of itself
    proba = np.column_stack([1 - sharp, sharp])
    predicted = proba.argmax(axis=1)
    raw = estimate(proba, predicted)["accuracy"]
    calibrated = estimate(Calibration.fit(proba, y.astype(str), ["0", "1"]).apply(proba), predicted)[
        "accuracy"
    ]
    realized = accuracy_score(y, predicted)
    assert abs(calibrated - realized) < 0.01 < abs(raw - realized)


def test_multiclass_and_stored_calibration() -> None:
    rng = np.random.default_rng(9)
    logits = rng.normal(0, 2, (30_000, 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in proba])
    calibration = Calibration.from_dict(Calibration.fit(proba, y.astype(str), ["0", "1", "2"]).to_dict())
    calibrated = calibration.apply(proba)
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    predicted = proba.argmax(axis=1)
    assert estimate(calibrated, predicted)["accuracy"] == pytest.approx(
        accuracy_score(y, predicted), abs=0.01
    )
    assert estimate(np.zeros((0, 3)), np.zeros(0, dtype=int)) == {}
