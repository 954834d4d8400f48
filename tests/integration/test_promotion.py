"""Evaluation, promotion gates and model cards on real stores with real models."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

from loopline.core.errors import Conflict, InvalidInput
from loopline.core.promotion import PromotionRefused
from loopline.core.registry import ModelVersion
from loopline.registry.card import card_html
from loopline.registry.policy import DEFAULT_POLICY, Policy
from loopline.services import Datasets, Promotion, Registry, Services
from loopline.specs.contract import Contract
from loopline.tracking.tracker import Tracker

BOTH_MODES = True  # in process, and through a server
FEATURES = [f"f{i}" for i in range(6)]
LABELLED = Contract.parse({"columns": {"label": {"type": "integer", "allowed": [0, 1]}}})


@pytest.fixture(scope="module")
def dataset() -> tuple[pd.DataFrame, pd.DataFrame]:
    x, y = make_classification(4000, 6, n_informative=4, class_sep=1.5, random_state=0)
    frame = pd.DataFrame(x, columns=FEATURES).assign(label=y)
    frame["group"] = np.where(frame["f5"] > 0, "a", "b")
    return frame.iloc[:2000], frame.iloc[2000:].reset_index(drop=True)


@pytest.fixture
def promotion(services: Services) -> Promotion:
    return services.promotion


def _log(
    tracker: Tracker,
    model: object,
    frame: pd.DataFrame,
    columns: list[str],
    validate_with: Datasets | None = None,
) -> ModelVersion:
    with tracker.start_run("promotion") as run:
        run.log_input(frame, "train")
        if validate_with is not None:  # as ll.validate does inside a run
            validate_with.validate(frame, LABELLED, run_id=run.id)
        return run.log_model(model, "clf", input_example=frame[columns].head())


@pytest.fixture
def versions(
    tracker: Tracker, services: Services, dataset: tuple[pd.DataFrame, pd.DataFrame]
) -> list[ModelVersion]:
    """1: weak (learned from shuffled labels), 2: strong, 3: like 2 with a hair more
    regularisation."""
    train, _ = dataset
    shuffled = train["label"].sample(frac=1.0, random_state=0).to_numpy()
    weak = LogisticRegression().fit(train[FEATURES], shuffled)
    strong = LogisticRegression().fit(train[FEATURES], train["label"])
    twin = LogisticRegression(C=0.98).fit(train[FEATURES], train["label"])
    return [_log(tracker, m, train, FEATURES, services.datasets) for m in (weak, strong, twin)]


def test_evaluation_is_stored_with_metrics_slices_latency_and_plots(
    promotion: Promotion,
    registry: Registry,
    versions: list[ModelVersion],
    dataset: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, test = dataset
    evaluation = promotion.evaluate("models:/clf/2", test, "label", slices=["group", "f0"])
    assert evaluation.task == "classification"
    assert set(evaluation.metrics) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "calibration_error",
    }
    assert 0.7 < evaluation.metrics["accuracy"] <= 1 and 0 <= evaluation.metrics["calibration_error"] < 0.2
    assert set(evaluation.slices["group"]) == {"a", "b"}
    assert sum(s["count"] for s in evaluation.slices["group"].values()) == len(test)
    assert len(evaluation.slices["f0"]) == 4  # a many-valued number is cut into quartiles
    assert evaluation.latency["row_p95_ms"] >= evaluation.latency["row_p50_ms"] > 0
    assert evaluation.latency["batch_rows"] == len(test)
    assert set(evaluation.artifacts) == {"confusion_matrix.png", "roc.png", "calibration.png"}
    assert promotion.evaluation_plot("clf", 2, evaluation.id, "roc.png").startswith(b"\x89PNG")
    stored = registry.get_version("clf", 2)
    assert stored.metrics["roc_auc"] == evaluation.metrics["roc_auc"]
    assert promotion.evaluations("clf", 2) == [evaluation]


def test_regression_evaluation(tracker: Tracker, promotion: Promotion) -> None:
    x, y = make_regression(600, 3, noise=5.0, random_state=1)
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=y)
    with tracker.start_run("reg") as run:
        run.log_model(
            LinearRegression().fit(frame[["a", "b", "c"]], frame["y"]),
            "reg",
            input_example=frame[["a", "b", "c"]].head(),
        )
    evaluation = promotion.evaluate("models:/reg/1", frame, "y")
    assert evaluation.task == "regression"
    assert set(evaluation.metrics) == {"rmse", "mae", "r2"}
    assert evaluation.metrics["r2"] > 0.95 and 3 < evaluation.metrics["rmse"] < 7
    assert list(evaluation.artifacts) == ["residuals.png"]


def test_evaluation_input_errors(
    promotion: Promotion, versions: list[ModelVersion], dataset: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, test = dataset
    with pytest.raises(InvalidInput, match="target column 'nope'"):
        promotion.evaluate("models:/clf/1", test, "nope")
    with pytest.raises(InvalidInput, match=r"slice columns \['nope'\]"):
        promotion.evaluate("models:/clf/1", test, "label", slices=["nope"])
    with pytest.raises(InvalidInput, match="no rows"):
        promotion.evaluate("models:/clf/1", test.head(0), "label")


def test_a_better_version_is_promoted_with_its_evidence_recorded(
    promotion: Promotion,
    registry: Registry,
    versions: list[ModelVersion],
    dataset: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, test = dataset
    first = promotion.promote("clf", 1)  # nothing holds the alias: the default gates pass
    assert first.passed and first.current_version is None
    report = promotion.promote("clf", 2, data=test, target="label")
    assert report.passed and report.current_version == 1
    better = next(r for r in report.results if r.gate == "better_than_current")
    assert better.evidence["test"] == "mcnemar" and better.evidence["p_value"] < 1e-6
    assert better.evidence["candidate_only_right"] > better.evidence["current_only_right"]
    assert registry.get_model("clf").aliases == {"champion": 2}
    event = registry.alias_history("clf", "champion")[-1]
    assert (event.from_version, event.to_version, event.forced) == (1, 2, False)
    assert event.report is not None and event.report["passed"] is True


def test_a_worse_version_is_refused_and_nothing_moves(
    promotion: Promotion,
    registry: Registry,
    versions: list[ModelVersion],
    dataset: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, test = dataset
    registry.set_alias("clf", "champion", 2)
    with pytest.raises(PromotionRefused) as refused:
        promotion.promote("clf", 1, data=test, target="label")
    report = refused.value.report
    assert not report.passed
    assert [r.gate for r in report.results if not r.passed] == ["better_than_current"]
    assert "[FAIL] better_than_current" in str(refused.value)
    assert registry.get_model("clf").aliases == {"champion": 2}


def test_noise_does_not_promote(
    promotion: Promotion,
    registry: Registry,
    versions: list[ModelVersion],
    dataset: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, test = dataset
    registry.set_alias("clf", "champion", 2)
    for metric in ("accuracy", "log_loss", "roc_auc"):
        policy = Policy.from_dict({"gates": [{"better_than_current": {"metric": metric}}]})
        with pytest.raises(PromotionRefused) as refused:  # version 3 is version 2 give or take noise
            promotion.promote("clf", 3, policy=policy, data=test, target="label")
        evidence = refused.value.report.results[0].evidence
        assert evidence["p_value"] > 0.05, (metric, evidence)


def test_forcing_needs_a_reason_and_is_recorded(
    promotion: Promotion,
    registry: Registry,
    versions: list[ModelVersion],
    dataset: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, test = dataset
    registry.set_alias("clf", "champion", 2)
    with pytest.raises(InvalidInput, match="needs a reason"):
        promotion.promote("clf", 1, data=test, target="label", force_reason="  ")
    report = promotion.promote("clf", 1, data=test, target="label", force_reason="incident 42: roll back")
    assert report.forced and not report.passed
    event = registry.alias_history("clf", "champion")[-1]
    assert (event.to_version, event.forced, event.reason) == (1, True, "incident 42: roll back")


def test_each_gate_checks_what_it_says(
    promotion: Promotion,
    registry: Registry,
    tracker: Tracker,
    versions: list[ModelVersion],
    dataset: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = dataset
    registry.set_alias("clf", "champion", 2)
    # a version that needs a column callers do not send, trained without validated data
    extra = train.assign(f6=train["f0"] * 2)
    needy = _log(
        tracker, LogisticRegression().fit(extra[[*FEATURES, "f6"]], extra["label"]), extra, [*FEATURES, "f6"]
    )
    policy = Policy.from_dict(
        {
            "gates": [
                "signature_compatible",
                {"metric_threshold": {"metric": "roc_auc", "min": 0.999}},
                {"latency": {"p95_ms": 0.0001}},
                "data_validation",
                {"parity": {"attribute": "group", "metric": "selection_rate", "max_gap": 0.01}},
            ]
        }
    )
    with pytest.raises(PromotionRefused) as refused:
        promotion.promote(
            "clf", needy.version, policy=policy, data=test.assign(f6=test["f0"] * 2), target="label"
        )
    results = {r.gate: r for r in refused.value.report.results}
    assert all(not r.passed for r in results.values())
    assert "needs column 'f6'" in results["signature_compatible"].message
    assert results["metric_threshold"].evidence["value"] < 0.999
    assert results["latency"].evidence["budget_ms"] == 0.0001
    assert "recorded no validation" in results["data_validation"].message
    assert results["parity"].evidence["gap"] > 0.01 and set(results["parity"].evidence["groups"]) == {
        "a",
        "b",
    }


def test_gates_that_need_data_say_so(
    promotion: Promotion, registry: Registry, versions: list[ModelVersion]
) -> None:
    registry.set_alias("clf", "champion", 1)
    with pytest.raises(PromotionRefused, match="needs evaluation data"):
        promotion.promote("clf", 2, policy=DEFAULT_POLICY)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gates: nope", "needs a list under 'gates'"),
        ("gates:\n  - teleport", "unknown kind 'teleport'"),
        ("gates:\n  - latency: {p99_ms: 3}", r"unknown settings \['p99_ms'\]"),
        ("gates:\n  - latency: {}", "missing 1 required positional argument"),
        ("gates:\n  - {latency: {p95_ms: 1}, parity: {}}", "write it as a kind"),
        ("gates: [", "not valid YAML"),
    ],
)
def test_policy_mistakes_are_explained(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Policy.from_yaml(text)


def test_a_policy_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("gates:\n  - metric_threshold: {metric: f1, min: 0.7}\n  - signature_compatible\n")
    policy = Policy.load(path)
    assert Policy.from_dict(policy.to_dict()) == policy


def test_the_model_card_tells_the_story(
    promotion: Promotion,
    registry: Registry,
    tracker: Tracker,
    versions: list[ModelVersion],
    dataset: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, test = dataset
    registry.update_model("clf", description="Who will churn next month.")
    registry.update_version("clf", 2, tags={"limitations": "Trained on 2025 customers only."})
    promotion.promote("clf", 1)
    promotion.promote("clf", 2, data=test, target="label")
    holdout = test.head(1000)  # other rows: another dataset than the promotion's
    promotion.evaluate("models:/clf/2", holdout, "label", slices=["group"], dataset_name="holdout")
    card = promotion.model_card("clf", 2)
    for expected in (
        "# Model card: clf version 2",
        "Who will churn next month.",
        "| trained on | train |",
        "| evaluated on | holdout |",
        "| f0 | double | refused |",
        "Slices by **group**",
        "@champion: passed",
        "| better_than_current | pass |",
        "Trained on 2025 customers only.",
        "scikit-learn==",
    ):
        assert expected in card, expected
    page = card_html(card, "clf 2")
    assert page.startswith("<!doctype html>") and "<table>" in page and "<script" not in page
    assert io.StringIO(page).read().count("<h2>") >= 6


def test_validation_evidence_cannot_be_forged(
    services: Services, promotion: Promotion, tracker: Tracker, dataset: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """The gate reads what the validation service recorded while the run trained: not a tag
    set by hand, not a verdict stamped on a finished run, and a failure stays a failure."""
    train, _ = dataset
    model = LogisticRegression().fit(train[FEATURES], train["label"])
    gate = Policy.from_dict({"gates": ["data_validation"]})
    with tracker.start_run("forger") as run:
        with pytest.raises(InvalidInput, match="set by data validation"):
            services.tracking.log_batch(run.id, tags={"data_validation": "passed"})
        forged = run.log_model(model, "clf", input_example=train[FEATURES].head())
    with pytest.raises(Conflict, match="already ended as FINISHED"):
        services.datasets.validate(train, LABELLED, run_id=run.id)
    with pytest.raises(PromotionRefused, match="recorded no validation"):
        promotion.promote("clf", forged.version, policy=gate)

    with tracker.start_run("mixed") as run:
        failed = services.datasets.validate(train.assign(label=7), LABELLED, run_id=run.id)
        services.datasets.validate(train, LABELLED, run_id=run.id)
        mixed = run.log_model(model, "clf", input_example=train[FEATURES].head())
    assert not failed.passed and failed.failures[0].check == "allowed"
    assert [v.passed for v in services.datasets.validations(run.id)] == [False, True]
    assert services.tracking.get_run(run.id).tags["data_validation"] == "failed"
    with pytest.raises(PromotionRefused, match="1 of 2 validations of the training data failed"):
        promotion.promote("clf", mixed.version, policy=gate)
