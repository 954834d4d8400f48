"""Prometheus metrics of a server: requests and errors, latency, batch sizes and what the
models predict, per deployment, version and arm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096)
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class ServingMetrics:
    """One registry per server. With several worker processes, `multiprocess_dir` holds
    their shared values (prometheus-client's multiprocess mode) and /metrics adds them up."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self._multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        registry = None if multiprocess_dir is not None else self.registry
        common = ["deployment", "version", "arm"]
        self.requests = Counter(
            "loopline_requests", "Prediction requests by outcome", [*common, "status"], registry=registry
        )
        self.latency = Histogram(
            "loopline_request_latency_seconds", "Time to answer a prediction request", common,
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.rows = Counter("loopline_predicted_rows", "Rows predicted", common, registry=registry)
        self.batch_rows = Histogram(
            "loopline_batch_rows", "Rows per model call (micro-batching)", ["deployment", "version"],
            buckets=BATCH_BUCKETS, registry=registry,
        )  # fmt: skip
        self.confidence = Histogram(
            "loopline_prediction_confidence", "Probability of the predicted class", common,
            buckets=CONFIDENCE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.classes = Counter(
            "loopline_predicted_class", "Predicted class labels", [*common, "label"], registry=registry
        )
        self.values = Histogram(
            "loopline_prediction_value", "Predicted values of regressors", common, registry=registry
        )
        self.errors = Counter(
            "loopline_request_errors", "Requests refused or failed, by reason", ["deployment", "status"],
            registry=registry,
        )  # fmt: skip

    def observe_batch(self, deployment: str, version: int, rows: int) -> None:
        self.batch_rows.labels(deployment, str(version)).observe(rows)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self._multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self._multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def observe(
        self, deployment: str, version: int, arm: str, seconds: float, predictions: Any, proba: Any
    ) -> None:
        labels = (deployment, str(version), arm)
        self.requests.labels(*labels, "200").inc()
        self.latency.labels(*labels).observe(seconds)
        self.rows.labels(*labels).inc(len(predictions))
        if proba is not None:
            confidence = self.confidence.labels(*labels)
            for value in proba.max(axis=1):
                confidence.observe(float(value))
            for label in predictions:
                self.classes.labels(*labels, str(label)).inc()
        elif getattr(predictions, "dtype", None) is not None and predictions.dtype.kind in "fiu":
            values = self.values.labels(*labels)
            for value in predictions:
                values.observe(float(value))
