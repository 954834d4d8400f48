"""Bring an MLflow tracking store's history into loopline (`loopline import mlflow SOURCE`).

SOURCE is any tracking URI MLflow's client opens: a SQLite database, an `mlruns` folder, a
PostgreSQL URL or an `http://` MLflow server. What comes over: experiments; runs with their
ids, names, authors, params, tags, full metric histories, status, times and parent links;
their artifacts; registered models with their versions (files in MLflow's format, described
for loopline by `loopline.models.mlflow_format`), aliases and tags.

Re-running imports nothing twice and finishes what a killed run left: a run is recreated
under its own id (`Tracking.import_run` returns it if it exists), metric values travel in
batches with ids derived from the run, key and position (the store keeps each batch once),
artifacts are re-indexed by name, a version is found again by the MLflow version it records,
and a run is marked complete only after all of it is stored. Counts are read back from
loopline at the end, and anything not brought over is listed with the reason.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.core.entities import DEFAULT_PROJECT, Metric, Run, RunStatus, Source
from loopline.core.errors import InvalidInput, LooplineError, NotFound
from loopline.models.mlflow_format import describe_mlflow_model
from loopline.services import Registry, Tracking
from loopline.store.engine import parse_store_url

COMPLETE_TAG = "loopline.imported_from"  # set last: the run is whole
VERSION_TAG = "mlflow.import.version"  # the MLflow version a loopline version was made from
_PARENT, _RUN_NAME = "mlflow.parentRunId", "mlflow.runName"
_BATCH = 10_000
_PAGE = 1000

Progress = Callable[[str, int, int], None]
"""Called with (what, done, total) as the import goes."""


@dataclass
class ImportReport:
    """What the source holds, what loopline holds of it now, and what did not come over."""

    source: dict[str, int] = field(default_factory=dict)
    imported: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def count(self, side: dict[str, int], what: str, n: int = 1) -> None:
        side[what] = side.get(what, 0) + n

    @property
    def complete(self) -> bool:
        return not self.skipped and self.source == self.imported


def mlflow_tracking_uri(source: str) -> str:
    """SOURCE as MLflow's client takes it: a folder is an `mlruns` file store, a `.db` file
    a SQLite database; URLs pass unchanged."""
    if "://" in source or source.startswith(("file:", "sqlite:")):
        return source
    path = Path(source).expanduser().resolve()
    if path.is_dir():
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for it
        return path.as_uri()
    if path.is_file():
        return f"sqlite:///{path}"
    raise NotFound(f"{source} is neither an MLflow tracking URI nor an existing folder or database file")


class MlflowImport:
    """One import of `source` into loopline's services (local, or a server's through its
    client), acting as their principal: a maintainer of `project`."""

    def __init__(
        self,
        source: str,
        tracking: Tracking,
        registry: Registry,
        *,
        project: str = DEFAULT_PROJECT,
        progress: Progress | None = None,
    ) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise InvalidInput(
                "importing from MLflow needs its client: pip install 'loopline[mlflow]'"
            ) from None
        self.uri = mlflow_tracking_uri(source)
        self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self._tracking = tracking
        self._registry = registry
        self._project = project
        self._progress = progress or (lambda what, done, total: None)
        self.report = ImportReport()
        self._source_runs: set[str] = set()
        database = self.uri.split(":", 1)[0].split("+", 1)[0]
        self._database = _MlflowDatabase(self.uri) if database in ("sqlite", "postgresql") else None

    def run(self) -> ImportReport:
        """Import everything; the report's counts are read back from loopline."""
        experiments = self._experiments()
        for name in experiments.values():
            self.report.count(self.report.source, "experiments")
            try:
                self._tracking.get_or_create_experiment(name, self._project)
                self.report.count(self.report.imported, "experiments")
            except LooplineError as exc:
                self.report.skipped.append(f"experiment {name!r}: {exc}")
        runs = [(name, run) for exp_id, name in experiments.items() for run in self._runs(exp_id)]
        self._source_runs = {run.info.run_id for _, run in runs}
        imported: set[str] = set()
        try:
            for done, (experiment, run) in enumerate(_parents_first(runs), 1):
                self._import_run(experiment, run, imported)
                self._progress("runs", done, len(runs))
        finally:
            if self._database is not None:
                self._database.close()
        self._import_models(imported)
        return self.report

    # runs ----------------------------------------------------------------------------

    def _experiments(self) -> dict[str, str]:
        from mlflow.entities import ViewType

        found: dict[str, str] = {}
        token = None
        while True:
            page = self._client.search_experiments(
                view_type=ViewType.ALL, max_results=_PAGE, page_token=token
            )
            found.update((e.experiment_id, e.name) for e in page)
            token = page.token
            if not token:
                return found

    def _runs(self, experiment_id: str) -> Iterator[Any]:
        from mlflow.entities import ViewType

        token = None
        while True:
            page = self._client.search_runs(
                [experiment_id], run_view_type=ViewType.ALL, max_results=_PAGE, page_token=token
            )
            yield from page
            token = page.token
            if not token:
                return

    def _import_run(self, experiment: str, source: Any, imported: set[str]) -> None:
        info, data = source.info, source.data
        run_id = info.run_id
        histories = self._histories(run_id, list(data.metrics))
        artifacts = list(self._artifact_files(run_id, info.artifact_uri))
        self._count_source(source, histories, artifacts)
        parent = data.tags.get(_PARENT)
        if parent is not None and parent not in imported:
            self.report.skipped.append(
                f"run {run_id}: its parent run {parent} was not imported; linked to none"
            )
            parent = None
        try:
            run = self._tracking.import_run(_as_run(source, parent), experiment, self._project)
            if run.tags.get(COMPLETE_TAG) != self.uri:
                self._import_metrics(run_id, histories)
                self._import_artifacts(run_id, artifacts)
                self._tracking.log_batch(run_id, tags={COMPLETE_TAG: self.uri})
        except LooplineError as exc:
            self.report.skipped.append(f"run {run_id} ({info.run_name}): {exc}")
            return
        imported.add(run_id)
        self._count_imported(run_id)

    def _count_source(self, source: Any, histories: dict[str, list[Metric]], artifacts: list[str]) -> None:
        report, data = self.report, source.data
        report.count(report.source, "runs")
        report.count(report.source, "params", len(data.params))
        report.count(report.source, "tags", len(_user_tags(data.tags)))
        report.count(report.source, "metric values", sum(len(h) for h in histories.values()))
        report.count(report.source, "artifacts", len(artifacts))

    def _count_imported(self, run_id: str) -> None:
        report, run = self.report, self._tracking.get_run(run_id)
        report.count(report.imported, "runs")
        report.count(report.imported, "params", len(run.params))
        report.count(report.imported, "tags", len(_user_tags(run.tags)) - 1)  # less the completion mark
        for key in run.metrics:
            report.count(report.imported, "metric values", len(self._tracking.metric_history(run_id, key)))
        report.count(report.imported, "artifacts", len(self._tracking.list_artifacts(run_id)))

    def _histories(self, run_id: str, keys: list[str]) -> dict[str, list[Metric]]:
        """Every value of each metric of the run: one query of MLflow's database when the
        source is one, else one call of its client per key."""
        if self._database is not None:
            return self._database.histories(run_id)
        return {
            key: [
                Metric(m.key, float(m.value), int(m.step), int(m.timestamp))
                for m in self._client.get_metric_history(run_id, key)
            ]
            for key in keys
        }

    def _import_metrics(self, run_id: str, histories: dict[str, list[Metric]]) -> None:
        values = [m for key in sorted(histories) for m in histories[key]]
        for start in range(0, len(values), _BATCH):
            batch_id = _batch_id(run_id, start)
            self._tracking.log_batch(run_id, values[start : start + _BATCH], batch_id=batch_id)

    def _artifact_files(self, run_id: str, artifact_uri: str | None) -> Iterator[str]:
        """The run's artifact files: walked on disk when MLflow keeps them in a local folder
        (its default), else listed by its client."""
        folder = _local_folder(artifact_uri)
        if folder is not None:
            if folder.is_dir():
                yield from sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
            return
        pending: list[str | None] = [None]
        while pending:
            for entry in self._client.list_artifacts(run_id, pending.pop()):
                if entry.is_dir:
                    pending.append(entry.path)
                else:
                    yield entry.path

    def _import_artifacts(self, run_id: str, names: list[str]) -> None:
        with tempfile.TemporaryDirectory(prefix="loopline-import-") as tmp:
            for name in names:
                local = self._client.download_artifacts(run_id, name, tmp)
                self._tracking.log_artifact_path(run_id, local, name)
                os.unlink(local)

    # registered models ---------------------------------------------------------------

    def _import_models(self, imported: set[str]) -> None:
        token = None
        while True:
            page = self._client.search_registered_models(max_results=_PAGE, page_token=token)
            for model in page:
                try:
                    self._import_model(model, imported)
                except LooplineError as exc:
                    self.report.skipped.append(f"model {model.name}: {exc}")
            token = page.token
            if not token:
                return

    def _import_model(self, model: Any, imported: set[str]) -> None:
        report = self.report
        report.count(report.source, "models")
        report.count(report.source, "aliases", len(model.aliases))
        try:
            ours = self._registry.get_model(model.name)
        except NotFound:
            ours = self._registry.create_model(model.name, model.description or "", model.tags, self._project)
        report.count(report.imported, "models")
        versions = sorted(self._versions(model.name), key=lambda v: int(v.version))
        mapped = {
            v.tags[VERSION_TAG]: v.version
            for v in self._registry.list_versions(ours.name)
            if VERSION_TAG in v.tags
        }
        for done, version in enumerate(versions, 1):
            report.count(report.source, "versions")
            if str(version.version) not in mapped:
                number = self._import_version(model.name, version, imported)
                if number is None:
                    continue
                mapped[str(version.version)] = number
            report.count(report.imported, "versions")
            self._progress(f"versions of {model.name}", done, len(versions))
        current = self._registry.get_model(ours.name).aliases
        for alias, version in model.aliases.items():
            if str(version) not in mapped:
                report.skipped.append(f"alias {model.name}@{alias}: version {version} was not imported")
                continue
            if current.get(alias) != mapped[str(version)]:
                try:
                    self._registry.set_alias(
                        ours.name, alias, mapped[str(version)], reason=f"imported from {self.uri}"
                    )
                except LooplineError as exc:
                    report.skipped.append(f"alias {model.name}@{alias}: {exc}")
                    continue
            report.count(report.imported, "aliases")

    def _versions(self, name: str) -> Iterator[Any]:
        quoted = name.replace("'", "\\'")
        token = None
        while True:
            page = self._client.search_model_versions(f"name='{quoted}'", max_results=_PAGE, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def _import_version(self, name: str, version: Any, imported: set[str]) -> int | None:
        where = f"version {version.version} of model {name}"
        if version.status != "READY":
            self.report.skipped.append(f"{where}: it is {version.status} in MLflow")
            return None
        tags = {**version.tags, VERSION_TAG: str(version.version), "mlflow.source": version.source}
        if version.current_stage and version.current_stage != "None":
            tags["mlflow.stage"] = version.current_stage
        if version.run_id in self._source_runs and version.run_id not in imported:
            self.report.skipped.append(f"{where}: its run {version.run_id} was not imported")
            return None
        run_id = version.run_id if version.run_id in imported else None  # logged outside the source
        try:
            with tempfile.TemporaryDirectory(prefix="loopline-import-") as tmp:
                from mlflow.artifacts import download_artifacts

                uri = self._client.get_model_version_download_uri(name, version.version)
                folder = Path(download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=self.uri))
                describe_mlflow_model(folder)
                registered = self._registry.register(
                    name, folder, run_id=run_id, description=version.description or "", tags=tags
                )
        except (LooplineError, OSError) as exc:
            self.report.skipped.append(f"{where}: {exc}")
            return None
        except Exception as exc:  # MLflow's own errors: its artifact store unreachable, say
            self.report.skipped.append(
                f"{where}: MLflow could not give its files ({type(exc).__name__}: {exc})"
            )
            return None
        return registered.version


def _user_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags loopline keeps as tags (the run's name and parent are attributes here)."""
    return {k: v for k, v in tags.items() if k not in (_PARENT, _RUN_NAME)}


def _as_run(source: Any, parent: str | None) -> Run:
    info, data = source.info, source.data
    status = {"SCHEDULED": "RUNNING"}.get(info.status, info.status)
    return Run(
        id=info.run_id,
        experiment_id=0,  # the experiment is named beside it
        name=info.run_name or data.tags.get(_RUN_NAME) or info.run_id[:8],
        status=RunStatus(status),
        start_time=info.start_time or 0,
        end_time=info.end_time,
        created_by=info.user_id or "unknown",
        parent_id=parent,
        source=Source(
            entry_point=data.tags.get("mlflow.source.name"),
            git_commit=data.tags.get("mlflow.source.git.commit"),
        ),
        deleted=info.lifecycle_stage == "deleted",
        params=dict(data.params),
        tags=_user_tags(data.tags),
    )


def _batch_id(run_id: str, start: int) -> str:
    return "mlflow-" + hashlib.sha256(f"{run_id}\0{start}".encode()).hexdigest()[:48]


def _local_folder(artifact_uri: str | None) -> Path | None:
    if not artifact_uri:
        return None
    if artifact_uri.startswith("file:"):
        from urllib.parse import unquote, urlsplit

        return Path(unquote(urlsplit(artifact_uri).path))
    return Path(artifact_uri) if artifact_uri.startswith("/") else None


class _MlflowDatabase:
    """MLflow's SQL store read directly, where its client would take a query per metric key."""

    def __init__(self, uri: str) -> None:
        import sqlalchemy as sa

        self._engine = sa.create_engine(parse_store_url(uri))  # postgresql:// through psycopg 3
        self._query = sa.text(
            "SELECT key, value, step, timestamp, is_nan FROM metrics WHERE run_uuid = :run "
            "ORDER BY key, step, timestamp"
        )

    def histories(self, run_id: str) -> dict[str, list[Metric]]:
        found: dict[str, list[Metric]] = {}
        with self._engine.connect() as conn:
            for key, value, step, timestamp, is_nan in conn.execute(self._query, {"run": run_id}):
                found.setdefault(key, []).append(
                    Metric(key, math.nan if is_nan else float(value), int(step), int(timestamp))
                )
        return found

    def close(self) -> None:
        self._engine.dispose()


def _parents_first(runs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """(experiment, run) ordered so that each run comes after its parent, if in the source."""
    by_id = {item[1].info.run_id: item for item in runs}
    ordered: list[tuple[str, Any]] = []
    placed: set[str] = set()

    def place(run_id: str, seen: frozenset[str]) -> None:
        if run_id in placed or run_id in seen:
            return
        parent = by_id[run_id][1].data.tags.get(_PARENT)
        if parent in by_id:
            place(parent, seen | {run_id})
        placed.add(run_id)
        ordered.append(by_id[run_id])

    for run_id in sorted(by_id, key=lambda r: by_id[r][1].info.start_time or 0):
        place(run_id, frozenset())
    return ordered
