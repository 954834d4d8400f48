"""`loopline demo`: the loop so far, on a bundled dataset, through the public SDK.

The training data is registered as a dataset version with an inferred data contract. A
parent run sweeps the regularisation of a logistic regression on the breast-cancer
dataset. Each setting is a child run that validates its data against the contract and
logs its params, a learning curve, metrics, a confusion matrix, and its model as a
version. The best version is evaluated on held-out data (checked for drift against the
training data) and promoted to @champion through promotion gates; run the demo again and
the new best must beat the champion significantly, or the champion stays.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import loopline as ll
from loopline.settings import Settings

EXPERIMENT = "demo-breast-cancer"
MODEL = "breast-cancer"
DATASET = "breast-cancer-train"
POLICY = {
    "gates": [
        {"metric_threshold": {"metric": "roc_auc", "min": 0.95}},
        "signature_compatible",
        {"better_than_current": {"metric": "log_loss"}},
        {"latency": {"p95_ms": 100}},
        "data_validation",
    ]
}


def run_demo(settings: Settings, console: Console) -> ll.ModelVersion:
    """Run the sweep, register, evaluate and promote; returns the best version."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    ll.configure(settings=settings)
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=0.3, random_state=7, stratify=target
    )
    started = time.perf_counter()
    with ll.start_run(EXPERIMENT, run_name="sweep-C", tags={"dataset": "breast_cancer"}) as sweep:
        train = ll.datasets.register(DATASET, x_train.assign(target=y_train.to_numpy()))
        contract = ll.datasets.infer_contract(train)
        console.print(
            f"registered {train.uri} ({train.rows:,} rows, {len(train.schema)} columns, "
            f"sha256:{train.digest[:12]}); its contract has {len(contract.columns)} columns"
        )
        results = [_train(c, train, contract, x_test, y_test) for c in (0.01, 0.1, 1.0, 10.0)]
        best = max(results, key=lambda item: item[1]["roc_auc"])[0]
        sweep.set_tags({"best_version": best.uri})
    _print_sweep(console, results, best, time.perf_counter() - started)

    held_out = x_test.assign(target=y_test.to_numpy())
    drift = ll.monitoring.detect_drift(train, x_test)
    console.print(
        f"held-out data against the training data: {len(drift.drifted_columns)} of {len(drift.columns)} "
        f"columns drifted {drift.drifted_columns}; dataset drift: {'yes' if drift.dataset_drift else 'no'}"
    )
    evaluation = ll.evaluate(best.uri, held_out, "target", slices=["mean radius"], dataset_name="held-out")
    console.print(
        f"evaluated {best.uri} on held-out data: roc_auc {evaluation.metrics['roc_auc']:.4f}, "
        f"single-row p95 {evaluation.latency['row_p95_ms']:.2f} ms"
    )
    from loopline.registry.promotion import PromotionRefused

    try:
        report = ll.promote(MODEL, best.version, "champion", policy=POLICY, data=held_out, target="target")
        console.print(report.summary(), markup=False, highlight=False)
    except PromotionRefused as refused:
        console.print(refused.report.summary(), markup=False, highlight=False)
        console.print("the champion stays where it was")
    _print_where_to_look(console, settings, best)
    return best


def _train(
    c: float, train: Any, contract: Any, x_test: Any, y_test: Any
) -> tuple[ll.ModelVersion, dict[str, float]]:
    """One child run: validated data, a learning curve, metrics, a figure, and the model."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with ll.start_run(run_name=f"logreg-C{c}") as run:
        ll.datasets.validate(train, contract, require=True)  # tags the run data_validation=passed
        run.log_input(train)
        frame = train.to_pandas()
        x_train, y_train = frame.drop(columns="target"), frame["target"]
        run.log_params({"model": "logistic_regression", "C": c, "scaler": "standard", "rows": len(x_train)})
        for size in (0.25, 0.5, 0.75, 1.0):  # a learning curve, one step per fraction of the data
            n = int(len(x_train) * size)
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
            model.fit(x_train[:n], y_train[:n])
            run.log_metric("curve/test_accuracy", model.score(x_test, y_test), step=n)
        proba = model.predict_proba(x_test)[:, 1]
        predicted = (proba >= 0.5).astype(int)
        metrics = {
            "accuracy": accuracy_score(y_test, predicted),
            "f1": f1_score(y_test, predicted),
            "roc_auc": roc_auc_score(y_test, proba),
            "log_loss": log_loss(y_test, proba),
        }
        run.log_metrics(metrics)
        _log_confusion_matrix(run, y_test.to_numpy(), predicted)
        version = run.log_model(model, MODEL, input_example=x_train.head(), description=f"C={c}")
    return version, metrics


def _print_sweep(
    console: Console,
    results: list[tuple[ll.ModelVersion, dict[str, float]]],
    best: ll.ModelVersion,
    seconds: float,
) -> None:
    table = Table(
        "version", "run", "accuracy", "f1", "roc_auc", "log_loss", title="logistic regression sweep"
    )
    for version, m in results:
        style = "bold green" if version.uri == best.uri else None
        values = (f"{m[k]:.4f}" for k in ("accuracy", "f1", "roc_auc", "log_loss"))
        table.add_row(version.uri, (version.run_id or "")[:8], *values, style=style)
    console.print(table)
    console.print(f"tracked and registered {len(results)} models in {seconds:.1f}s; best: {best.uri}")


def _print_where_to_look(console: Console, settings: Settings, best: ll.ModelVersion) -> None:
    cli = _cli_command()
    console.print(f"store:      {settings.resolved_store_uri}")
    console.print(f"artifacts:  {settings.resolved_artifacts_uri}")
    console.print("look at it:")
    console.print(f"  {cli} runs list -e {EXPERIMENT} -o 'metrics.roc_auc DESC'")
    console.print(f"  {cli} models versions {MODEL}")
    console.print(f"  {cli} models card {MODEL} {best.version}")
    console.print(f"  {cli} lineage models:/{MODEL}@champion")
    console.print(f"  {cli} models alias {MODEL}")
    console.print(f"  {cli} datasets show {DATASET}")


def _cli_command() -> str:
    """`loopline` if it is on the PATH, else the path of the one beside this Python."""
    if shutil.which("loopline"):
        return "loopline"
    beside = Path(sys.executable).parent / "loopline"
    with contextlib.suppress(ValueError):
        return str(beside.relative_to(Path.cwd()))
    return str(beside)


def _log_confusion_matrix(run: ll.ActiveRun, truth: object, predicted: object) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
        from sklearn.metrics import ConfusionMatrixDisplay
    except ImportError:
        return  # figures need the `plots` extra
    display = ConfusionMatrixDisplay.from_predictions(truth, predicted)
    run.log_figure(display.figure_, "confusion_matrix.png")
    plt.close(display.figure_)
