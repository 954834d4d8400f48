"""The prediction server of one or more deployments, and its configuration; `processes`
runs it in one process per worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loopline.artifacts.tables import TableArea
from loopline.predictions.log import PredictionLog
from loopline.services import Services
from loopline.serving.app import HttpOptions, ServingApp
from loopline.serving.metrics import ServingMetrics
from loopline.serving.runtime import DeploymentRuntime, ServingOptions


@dataclass(frozen=True)
class ServerConfig:
    deployments: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    serving: ServingOptions = field(default_factory=ServingOptions)
    http: HttpOptions = field(default_factory=HttpOptions)
    log_flush_interval: float = 1.0
    access_log: bool = False


def build_app(
    services: Services, tables: TableArea, config: ServerConfig, metrics_dir: Path | None = None
) -> ServingApp:
    """The prediction server of `config.deployments`: their policies and models come from
    `services`, their prediction log goes to `tables`."""
    metrics = ServingMetrics(metrics_dir)
    runtimes = {
        name: DeploymentRuntime(
            name, services.deployments, services.registry, config.serving, metrics.observe_batch
        )
        for name in config.deployments
    }
    log = PredictionLog(tables, flush_interval=config.log_flush_interval)
    return ServingApp(runtimes, log, metrics, config.http)
