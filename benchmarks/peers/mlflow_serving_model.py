"""Saves the serving benchmark's model (scikit-learn logistic regression on the
breast-cancer data) as an MLflow model, for `mlflow models serve`.

    benchmarks/.peers-venv/bin/python benchmarks/peers/mlflow_serving_model.py DIR
"""

from __future__ import annotations

import sys

import mlflow.sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

features, target = load_breast_cancer(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=5000).fit(features, target)
mlflow.sklearn.save_model(
    model, sys.argv[1], input_example=features.head(), pip_requirements=["scikit-learn"]
)
