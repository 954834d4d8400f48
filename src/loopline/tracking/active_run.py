"""The handle a user holds while a run is active: `with loopline.start_run() as run:`."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopline.core.datasets import DatasetVersion
from loopline.core.entities import ArtifactEntry, Metric, Run, RunStatus
from loopline.core.errors import InvalidInput, RunTerminated
from loopline.core.registry import ModelVersion
from loopline.core.validation import check_key, check_metric_value, check_step
from loopline.tracking.system_metrics import SystemMetricsSampler

if TYPE_CHECKING:
    from loopline.tracking.tracker import Tracker

_FIGURE_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")


class ActiveRun:
    """A run in progress: log its params, metrics, tags, artifacts, inputs and models; use it as a
    context manager so that it always ends."""

    def __init__(self, tracker: Tracker, run: Run, *, system_metrics_interval_s: float | None = None) -> None:
        self._tracker = tracker
        self._service = tracker.service
        self._writer = tracker.writer
        self.id = run.id
        self.name = run.name
        self.experiment_id = run.experiment_id
        self._metric_keys: set[str] = set()
        self._ended = False
        self._system_metrics = (
            None
            if system_metrics_interval_s is None
            else SystemMetricsSampler(self, system_metrics_interval_s).start()
        )

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name} id={self.id}>"

    @property
    def info(self) -> Run:
        """The run as stored now, with every value logged so far."""
        self.flush()
        return self._service.get_run(self.id)

    # params and tags are rare and must fail loudly at once: they are written synchronously.

    def log_param(self, key: str, value: Any) -> None:
        """Log one parameter (stored as text)."""
        self._service.log_batch(self.id, params={key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log several parameters at once."""
        self._service.log_batch(self.id, params=params)

    def set_tag(self, key: str, value: Any) -> None:
        """Set one tag (stored as text)."""
        self._service.log_batch(self.id, tags={key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags at once."""
        self._service.log_batch(self.id, tags=tags)

    # metrics are buffered and stored in batches by the tracker's background writer.

    def log_metric(self, key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
        """Log one metric value at `step`; buffered and written in batches."""
        if key not in self._metric_keys:
            check_key("metric key", key)
            self._metric_keys.add(key)
        metric = Metric(
            key,
            check_metric_value(key, value),
            step if type(step) is int and step >= 0 else check_step(key, step),
            time.time_ns() // 1_000_000 if timestamp is None else timestamp,
        )
        self._writer.add(self.id, metric)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, timestamp: int | None = None) -> None:
        """Log several metric values at `step`; buffered and written in batches."""
        stamp = time.time_ns() // 1_000_000 if timestamp is None else timestamp
        for key, value in metrics.items():
            self.log_metric(key, value, step, stamp)

    def flush(self) -> None:
        """Make every metric value logged so far durable."""
        self._writer.flush()

    # artifacts

    def log_artifact(
        self, data: bytes | str | os.PathLike[str], name: str | None = None
    ) -> list[ArtifactEntry]:
        """Log a file, a directory (recursively) or raw bytes (which need a `name`)."""
        if isinstance(data, bytes | bytearray | memoryview):
            if name is None:
                raise InvalidInput("log_artifact(bytes) needs a name, e.g. name='notes/summary.txt'")
            return [self._service.log_artifact_bytes(self.id, name, bytes(data))]
        return self._service.log_artifact_path(self.id, data, name)

    def log_text(self, text: str, name: str) -> ArtifactEntry:
        """Store `text` as the artifact `name`."""
        return self._service.log_artifact_bytes(self.id, name, text.encode("utf-8"))

    def log_dict(self, data: Mapping[str, Any], name: str) -> ArtifactEntry:
        """Store `data` as JSON, or YAML when `name` ends in .yaml or .yml."""
        if name.endswith((".yaml", ".yml")):
            import yaml

            text = yaml.safe_dump(dict(data), sort_keys=False)
        elif name.endswith(".json"):
            text = json.dumps(data, indent=2, default=str)
        else:
            raise InvalidInput(f"log_dict name {name!r} must end in .json, .yaml or .yml")
        return self.log_text(text, name)

    def log_figure(self, figure: Any, name: str) -> ArtifactEntry:
        """Store a matplotlib figure in the format its name says (png, svg, pdf, jpg)."""
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if extension not in _FIGURE_FORMATS:
            raise InvalidInput(f"figure name {name!r} must end in one of: .{', .'.join(_FIGURE_FORMATS)}")
        buffer = io.BytesIO()
        figure.savefig(buffer, format=extension)
        return self._service.log_artifact_bytes(self.id, name, buffer.getvalue())

    def log_table(self, frame: Any, name: str) -> ArtifactEntry:
        """Store a pandas DataFrame as Parquet; `name` must end in .parquet."""
        if not name.endswith(".parquet"):
            raise InvalidInput(f"table name {name!r} must end in .parquet")
        buffer = io.BytesIO()
        frame.to_parquet(buffer, engine="pyarrow")
        return self._service.log_artifact_bytes(
            self.id, name, buffer.getvalue(), "application/vnd.apache.parquet"
        )

    # inputs and models

    def log_input(self, data: Any, name: str | None = None) -> str:
        """Record data this run reads (a registered dataset, or a frame by content hash),
        for lineage; returns the hash."""
        from loopline.models.signature import as_frame
        from loopline.profiling.fingerprint import table_digest

        registered = getattr(data, "info", data)
        if isinstance(registered, DatasetVersion):
            digest, label = registered.digest, name or registered.name
        elif name is None:
            raise InvalidInput("name the input: run.log_input(frame, name=...)")
        else:
            digest, label = table_digest(as_frame(data)), name
        self._service.log_input(self.id, label, digest)
        return digest

    def log_model(
        self,
        model: Any,
        name: str,
        *,
        input_example: Any = None,
        signature: Any = None,
        flavor: str | None = None,
        task: str | None = None,
        classes: Sequence[Any] | None = None,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        trusted_types: Sequence[str] = (),
        onnx: bool = False,
    ) -> ModelVersion:
        """Save `model` natively and register it as the next version of model `name`,
        linked to this run, its metrics and the datasets it read."""
        from loopline.models import save_model

        registry = self._tracker.registry
        if registry is None:
            raise InvalidInput("this tracker has no model registry; use loopline.start_run()")
        self.flush()  # the version records the run's metrics as they stand
        with tempfile.TemporaryDirectory(prefix="loopline-model-") as tmp:
            save_model(
                model,
                Path(tmp),
                flavor=flavor,
                input_example=input_example,
                signature=signature,
                task=task,
                classes=classes,
                trusted_types=trusted_types,
                onnx=onnx,
            )
            version = registry.register(name, Path(tmp), run_id=self.id, description=description, tags=tags)
        self._service.link_model_files(self.id, version.model, version.version)
        return version

    # lifecycle

    def end(self, status: RunStatus = RunStatus.FINISHED, error: str | None = None) -> None:
        """Flush buffered values and record how the run ended."""
        if self._ended:
            return
        self._ended = True
        try:
            if self._system_metrics is not None:
                self._system_metrics.stop()  # before the flush, which then stores its last sample
            self._writer.flush()
        finally:
            self._tracker.forget(self)
            self._service.end_run(self.id, status, error)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.end(RunStatus.FINISHED)
        elif isinstance(exc, KeyboardInterrupt | RunTerminated):
            self.end(RunStatus.KILLED, f"{type(exc).__name__}: interrupted")
        else:
            self.end(RunStatus.FAILED, "".join(traceback.format_exception(exc)))
        if isinstance(exc, RunTerminated):
            self._tracker.terminated()
