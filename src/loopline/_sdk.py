"""The module-level SDK: services and a tracker built on first use from `Settings()`.

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

    from loopline.core.lifecycle import GcReport
    from loopline.core.privacy import Erasure
    from loopline.core.promotion import PromotionReport
    from loopline.core.registry import Evaluation
    from loopline.models import LoadedModel
    from loopline.registry.policy import Policy
    from loopline.services import Datasets, Features, Registry, Services, Tracking
    from loopline.tracking.active_run import ActiveRun
    from loopline.tracking.tracker import Tracker
    from loopline.wiring.backends import Backends
    from loopline.wiring.settings import Settings

_lock = threading.Lock()
_tracker: Tracker | None = None
_services: Services | None = None
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
    global _tracker, _services, _settings
    from loopline.tracking.tracker import Tracker
    from loopline.wiring import open_services
    from loopline.wiring.settings import Settings

    overrides: dict[str, Any] = {
        "store_uri": store_uri, "artifacts_uri": artifacts_uri, "uri": uri, "token": token
    }  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if home is not None:
        overrides["home"] = Path(home)
    settings = (settings or Settings()).model_copy(update=overrides)
    with _lock:
        _close()
        _services = open_services(settings)
        _tracker = Tracker(
            _services.tracking, registry=_services.registry, default_experiment=settings.experiment
        )
        _settings = settings


def _close() -> None:
    global _tracker, _services, _settings
    if _tracker is not None:
        _tracker.close()
    if _services is not None:
        _services.close()
    _tracker = _services = _settings = None


def reset() -> None:
    """Close the SDK's stores; its next use configures it again from the environment."""
    with _lock:
        _close()


def _current() -> Tracker:
    if _tracker is None:
        configure()
    assert _tracker is not None
    return _tracker


def services() -> Services:
    """Every service behind the SDK: on the store, or through the server."""
    _current()
    assert _services is not None
    return _services


def current_settings() -> Settings:
    """The settings the SDK was configured with (on first use: from the environment)."""
    _current()
    assert _settings is not None
    return _settings


def registry_service() -> Registry:
    """The model registry behind the SDK."""
    return services().registry


def load_model(
    uri: str,
    *,
    trust: bool = False,
    trusted_types: Sequence[str] = (),
    module_factory: Any = None,
    onnx: bool = False,
) -> LoadedModel:
    """Load `models:/NAME/VERSION`, `models:/NAME@ALIAS`, `models:/NAME/latest`, or
    `runs:/RUN_ID/NAME`, the model a run logged (`LoadedModel.native` is the flavor's own object).

    Every file is checked against its sha256 first. A pickled (python_function) model
    loads only with `trust=True`; a scikit-learn model with types beyond loopline's
    reviewed list needs them named in `trusted_types`."""
    return registry_service().load(
        uri, trust=trust, trusted_types=trusted_types, module_factory=module_factory, onnx=onnx
    )


def dataset_service() -> Datasets:
    """The dataset service behind the SDK: the store's, or the server's."""
    return services().datasets


def feature_service() -> Features:
    """The feature store behind the SDK: the store's, or the server's."""
    return services().features


def _backends_in_use() -> Backends:
    """The local store behind the SDK; refused when it works through a server."""
    from loopline.wiring.local import LocalServices

    found = services()
    if not isinstance(found, LocalServices):
        raise InvalidInput(
            "this runs where the store is; the SDK is pointed at a server (LOOPLINE_URI): unset it, "
            "or run this on the server's machine"
        )
    return found.backends


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
    return services().promotion.evaluate(
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
    from loopline.registry.policy import Policy

    if isinstance(policy, str | Path):
        policy = Policy.load(policy)
    return services().promotion.promote(
        name, version, alias, policy=policy, data=data, target=target, force_reason=force_reason,
        trust=trust,
    )  # fmt: skip


def erase(column: str, value: str | int | float, *, dry_run: bool = False, reason: str = "") -> Erasure:
    """Erase one entity's personal data: the rows whose `column` equals `value` leave the
    prediction logs (with their requests' feedback and errors) and the dataset versions,
    each replaced by a new version without them. Administrators only; the audit trail
    records the counts, never the value. `dry_run` reports what would be erased."""
    return services().privacy.erase(column, str(value), dry_run=dry_run, reason=reason)


def gc(*, dry_run: bool = False) -> GcReport:
    """Remove what the retention policy no longer keeps (runs deleted long ago, old
    prediction-log days, blobs nothing refers to); `dry_run` only reports it. Administrators
    only; safe while others write. The policy: `loopline gc policy`."""
    return services().storage.gc(dry_run=dry_run)


def model_card(name: str, version: int, *, html: bool = False) -> str:
    """The model card of a version, as Markdown (or HTML)."""
    return services().promotion.model_card(name, version, html=html)


def tracking_service() -> Tracking:
    """The tracking service behind the SDK, for what the shortcuts below do not cover."""
    return _current().service


def start_run(
    experiment: str | int | None = None,
    *,
    project: str = "default",
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = True,
    system_metrics: bool | None = None,
    system_metrics_interval_s: float | None = None,
) -> ActiveRun:
    """Start a tracked run; use it as a context manager so that it always ends.

    `system_metrics=True` logs CPU, memory, disk, network and NVIDIA GPU use as the run's
    `system/...` metrics every `system_metrics_interval_s` seconds (needs
    `pip install 'loopline[system]'`); None reads LOOPLINE_SYSTEM_METRICS (off by default)
    and LOOPLINE_SYSTEM_METRICS_INTERVAL (10 s by default)."""
    return _current().start_run(
        experiment,
        project=project,
        run_name=run_name,
        tags=tags,
        nested=nested,
        system_metrics=system_metrics,
        system_metrics_interval_s=system_metrics_interval_s,
    )


def active_run() -> ActiveRun | None:
    """The innermost run started in this context and not yet ended, or None."""
    return _current().active_run()


def _require_active() -> ActiveRun:
    run = active_run()
    if run is None:
        raise InvalidInput("no active run: call loopline.start_run() first")
    return run


def end_run(status: RunStatus = RunStatus.FINISHED) -> None:
    """End the active run with `status`."""
    _require_active().end(status)


def log_param(key: str, value: Any) -> None:
    """Log one parameter of the active run."""
    _require_active().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    """Log several parameters of the active run."""
    _require_active().log_params(params)


def log_metric(key: str, value: float, step: int = 0) -> None:
    """Log one metric value of the active run at `step`."""
    _require_active().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int = 0) -> None:
    """Log several metric values of the active run at `step`."""
    _require_active().log_metrics(metrics, step)


def set_tag(key: str, value: Any) -> None:
    """Set one tag of the active run."""
    _require_active().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set several tags of the active run."""
    _require_active().set_tags(tags)


def flush() -> None:
    """Make every buffered metric value durable."""
    _current().flush()


def get_run(run_id: str) -> Run:
    """A run with its params, tags and latest metric values (buffered values flushed first)."""
    _current().flush()
    return tracking_service().get_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    """Every value of metric `key` of a run, in step order."""
    _current().flush()
    return tracking_service().metric_history(run_id, key)


def create_experiment(name: str, project: str = "default", description: str = "") -> Experiment:
    """A new experiment in `project`."""
    return tracking_service().create_experiment(name, project, description)


def list_experiments(project: str | None = None) -> list[Experiment]:
    """The experiments of `project`, or of every project."""
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
