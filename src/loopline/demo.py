"""`loopline demo`: a tracked scikit-learn training on a bundled dataset, via the SDK.

A parent run sweeps the regularisation of a logistic regression on the breast-cancer
dataset; each setting is a child run with its params, metrics, a learning curve, the
test predictions as a table and a confusion-matrix figure.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import loopline as ll
from loopline.settings import Settings

EXPERIMENT = "demo-breast-cancer"


def run_demo(settings: Settings, console: Console) -> str:
    """Run the sweep and return the id of the best child run."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ll.configure(settings=settings)
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=0.25, random_state=7, stratify=target
    )
    results = []
    started = time.perf_counter()
    with ll.start_run(EXPERIMENT, run_name="sweep-C", tags={"dataset": "breast_cancer"}) as sweep:
        for c in (0.01, 0.1, 1.0, 10.0):
            with ll.start_run(run_name=f"logreg-C{c}") as run:
                run.log_params({"model": "logistic_regression", "C": c, "scaler": "standard"})
                run.log_params({"train_rows": len(x_train), "test_rows": len(x_test)})
                for size in (0.25, 0.5, 0.75, 1.0):  # a learning curve, one step per fraction
                    n = int(len(x_train) * size)
                    partial = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
                    partial.fit(x_train[:n], y_train[:n])
                    run.log_metric("curve/test_accuracy", partial.score(x_test, y_test), step=n)
                model = partial
                proba = model.predict_proba(x_test)[:, 1]
                predicted = (proba >= 0.5).astype(int)
                metrics = {
                    "accuracy": accuracy_score(y_test, predicted),
                    "f1": f1_score(y_test, predicted),
                    "roc_auc": roc_auc_score(y_test, proba),
                    "log_loss": log_loss(y_test, proba),
                }
                run.log_metrics(metrics)
                predictions = pd.DataFrame(
                    {"label": y_test.to_numpy(), "proba": proba, "predicted": predicted}
                )
                run.log_table(predictions, "predictions.parquet")
                run.log_dict({"features": list(features.columns)}, "features.json")
                _log_confusion_matrix(run, np.asarray(y_test), predicted)
                results.append((run.id, run.name, metrics))
        best_id, best_name, best = max(results, key=lambda item: item[2]["roc_auc"])
        sweep.set_tags({"best_run": best_id})
        sweep.log_metric("best_roc_auc", best["roc_auc"])
    ll.flush()

    table = Table("run", "id", "accuracy", "f1", "roc_auc", "log_loss", title="logistic regression sweep")
    for run_id, name, m in results:
        style = "bold green" if run_id == best_id else None
        values = (f"{m[k]:.4f}" for k in ("accuracy", "f1", "roc_auc", "log_loss"))
        table.add_row(name, run_id[:8], *values, style=style)
    console.print(table)
    console.print(f"tracked {len(results)} runs in {time.perf_counter() - started:.1f}s; best: {best_name}")
    console.print(f"store:      {settings.resolved_store_uri}")
    console.print(f"artifacts:  {settings.resolved_artifacts_uri}")
    cli = _cli_command()
    console.print("look at it:")
    console.print(f"  {cli} runs list -e {EXPERIMENT} -o 'metrics.roc_auc DESC'")
    console.print(f"  {cli} runs show {best_id}")
    console.print(f"  {cli} runs compare {' '.join(r[0] for r in results[:2])}")
    return best_id


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
