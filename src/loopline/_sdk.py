"""The module-level SDK: a default tracker built on first use from `Settings()`.

This is the only module-level mutable state in loopline. Heavy modules load on first
use, so `import loopline` stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.core.entities import Experiment, Metric, Run, RunPage, RunStatus
from loopline.core.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from loopline.backends import Backends
    from loopline.data.datasets import DatasetService
    from loopline.models import LoadedModel
    from loopline.registry.evaluation import Evaluation
    from loopline.registry.policy import Policy
    from loopline.registry.promotion import PromotionReport
    from loopline.registry.service import RegistryService
    from loopline.settings import Settings
    from loopline.tracking.active_run import ActiveRun
    from loopline.tracking.service import TrackingService
    from loopline.tracking.tracker import Tracker

_lock = threading.Lock()
_tracker: Tracker | None = None
_backends: Backends | None = None
_settings: Settings | None = None


def configure(
    home: str | Path | None = None,
    store_uri: str | None = None,
    artifacts_uri: str | None = None,
    *,
    uri: str | None = None,
    token: str | None = None,
    settings: Settings | None = None,
) -> None:
    """Point the SDK at a store, or with `uri` at a loopline server (http://host:port) and
    `token`. Without a call, LOOPLINE_* variables or ~/.loopline are used."""
    global _tracker, _backends, _settings
    from loopline.settings import Settings

    overrides: dict[str, Any] = {
        "store_uri": store_uri, "artifacts_uri": artifacts_uri, "uri": uri, "token": token
    }  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if home is not None:
        overrides["home"] = Path(home)
    settings = (settings or Settings()).model_copy(update=overrides)
    with _lock:
        if _tracker is not None:
            _tracker.close()
        if _backends is not None:
            _backends.close()
        _tracker, _backends = _open(settings)
        _settings = settings


def _open(settings: Settings) -> tuple[Tracker, Backends | None]:
    """A tracker on the store (and the store's backends), or on the server `settings.uri`."""
    from loopline.backends import local_owner, open_backends
    from loopline.tracking.tracker import Tracker

    if settings.uri:
        from loopline.client.connection import ServerConnection
        from loopline.client.registry import RemoteRegistryService
        from loopline.client.tracking import RemoteTrackingService

        connection = ServerConnection(settings.uri, settings.token)
        tracking = RemoteTrackingService(connection)
        registry = RemoteRegistryService(connection, tracking.principal)
        return Tracker(tracking, registry=registry, default_experiment=settings.experiment), None
    backends = open_backends(settings)
    owner = local_owner()
    tracker = Tracker(
        backends.tracking(owner), registry=backends.registry(owner), default_experiment=settings.experiment
    )
    return tracker, backends


def reset() -> None:
    """Close the SDK's stores; its next use configures it again from the environment."""
    global _tracker, _backends, _settings
    with _lock:
        if _tracker is not None:
            _tracker.close()
        if _backends is not None:
            _backends.close()
        _tracker = _backends = _settings = None


def _current() -> Tracker:
    if _tracker is None:
        configure()
    assert _tracker is not None
    return _tracker


def current_settings() -> Settings:
    """The settings the SDK was configured with (on first use: from the environment)."""
    _current()
    assert _settings is not None
    return _settings


def registry_service() -> RegistryService:
    """The model registry behind the SDK."""
    registry = _current().registry
    assert registry is not None
    return registry


def load_model(
    uri: str,
    *,
    trust: bool = False,
    trusted_types: Sequence[str] = (),
    module_factory: Any = None,
    onnx: bool = False,
) -> LoadedModel:
    """Load `models:/NAME/VERSION`, `models:/NAME@ALIAS` or `models:/NAME/latest`.

    Every file is checked against its sha256 first. A pickled (python_function) model
    loads only with `trust=True`; a scikit-learn model with types beyond loopline's
    reviewed list needs them named in `trusted_types`."""
    return registry_service().load(
        uri, trust=trust, trusted_types=trusted_types, module_factory=module_factory
    )


def dataset_service() -> DatasetService:
    """The dataset service behind the SDK: the store's, or the server's."""
    from loopline.backends import local_owner

    tracker = _current()
    if _backends is not None:
        return _backends.datasets(local_owner())
    from loopline.client.datasets import RemoteDatasetService
    from loopline.client.tracking import RemoteTrackingService

    assert isinstance(tracker.service, RemoteTrackingService)
    return RemoteDatasetService(tracker.service.connection, tracker.service.principal)


def _backends_in_use() -> Backends:
    _current()
    if _backends is None:
        raise InvalidInput(
            "evaluate, promote and model_card work on a local store; with a server (LOOPLINE_URI), "
            "promote through `loopline models promote` against the store or the server's REST API"
        )
    return _backends


def evaluate(
    model_uri: str,
    data: pd.DataFrame,
    target: str,
    *,
    task: str | None = None,
    slices: Sequence[str] = (),
    dataset_name: str = "evaluation",
    trust: bool = False,
) -> Evaluation:
    """Metrics (per slice too), latency and plots of a model version on `data`, stored
    with the version. `task` is classification or regression (default: the model's)."""
    from loopline.backends import local_owner

    service = _backends_in_use().evaluations(local_owner())
    return service.evaluate(
        model_uri, data, target, task=task, slices=slices, dataset_name=dataset_name, trust=trust
    )


def promote(
    name: str,
    version: int,
    alias: str = "champion",
    *,
    policy: Policy | str | Path | Mapping[str, Any] | None = None,
    data: pd.DataFrame | None = None,
    target: str | None = None,
    force_reason: str | None = None,
    trust: bool = False,
) -> PromotionReport:
    """Move `alias` to `version` if it passes the policy's gates (a YAML file, a dict, a
    Policy; by default: signature compatible and better than the current holder).
    Refusals raise PromotionRefused with the report; `force_reason` overrides, on record."""
    from loopline.backends import local_owner
    from loopline.registry.policy import Policy

    if isinstance(policy, str | Path):
        policy = Policy.load(policy)
    elif isinstance(policy, Mapping):
        policy = Policy.from_dict(policy)
    service = _backends_in_use().promotion(local_owner())
    return service.promote(
        name, version, alias, policy=policy, data=data, target=target, force_reason=force_reason, trust=trust
    )


def model_card(name: str, version: int, *, html: bool = False) -> str:
    """The model card of a version, as Markdown (or HTML)."""
    from loopline.backends import local_owner
    from loopline.registry.card import card_html
    from loopline.registry.card import model_card as build

    owner = local_owner()
    backends = _backends_in_use()
    markdown = build(
        backends.registry(owner), backends.evaluations(owner), backends.tracking(owner), name, version
    )
    return card_html(markdown, f"{name} version {version}") if html else markdown


def tracking_service() -> TrackingService:
    """The tracking service behind the SDK, for what the shortcuts below do not cover."""
    return _current().service


def start_run(
    experiment: str | int | None = None,
    *,
    project: str = "default",
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = True,
) -> ActiveRun:
    """Start a tracked run; use it as a context manager so that it always ends."""
    return _current().start_run(experiment, project=project, run_name=run_name, tags=tags, nested=nested)


def active_run() -> ActiveRun | None:
    return _current().active_run()


def _require_active() -> ActiveRun:
    run = active_run()
    if run is None:
        raise InvalidInput("no active run: call loopline.start_run() first")
    return run


def end_run(status: RunStatus = RunStatus.FINISHED) -> None:
    _require_active().end(status)


def log_param(key: str, value: Any) -> None:
    _require_active().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _require_active().log_params(params)


def log_metric(key: str, value: float, step: int = 0) -> None:
    _require_active().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int = 0) -> None:
    _require_active().log_metrics(metrics, step)


def set_tag(key: str, value: Any) -> None:
    _require_active().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    _require_active().set_tags(tags)


def flush() -> None:
    """Make every buffered metric value durable."""
    _current().flush()


def get_run(run_id: str) -> Run:
    _current().flush()
    return tracking_service().get_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    _current().flush()
    return tracking_service().metric_history(run_id, key)


def create_experiment(name: str, project: str = "default", description: str = "") -> Experiment:
    return tracking_service().create_experiment(name, project, description)


def list_experiments(project: str | None = None) -> list[Experiment]:
    return tracking_service().list_experiments(project)


def search_runs(
    experiments: str | int | Sequence[str | int] | None = None,
    *,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int = 100,
    page_token: str | None = None,
    project: str = "default",
    as_frame: bool = False,
) -> RunPage | pd.DataFrame:
    """Runs matching `filter`, e.g. "metrics.auc > 0.9 and params.model = 'rf'".

    Returns a `RunPage` (iterate it; `next_page_token` fetches the next page), or a pandas
    DataFrame with one row per run when `as_frame` is true.
    """
    _current().flush()
    page = tracking_service().search_runs(
        experiments,
        project=project,
        filter=filter,
        order_by=order_by,
        max_results=max_results,
        page_token=page_token,
    )
    if not as_frame:
        return page
    import pandas as pd

    return pd.DataFrame.from_records([run.to_record() for run in page])
