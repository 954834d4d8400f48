"""A feature view's source as a DuckDB relation: a Parquet or CSV file (or a glob of them),
a stored dataset version, or the rows of a SQL query through SQLAlchemy (staged as Parquet)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from loopline.core.errors import InvalidInput
from loopline.core.features import RegisteredView, is_sql_source
from loopline.data.ingest import stage_query
from loopline.feature_store.offline import OpenSource
from loopline.services import Datasets

DATASET_PREFIX = "datasets:/"
_GLOB = "*?["
_FILE_DATABASES = ("sqlite", "duckdb")  # SQL sources that are files of the machine that reads them


@contextlib.contextmanager
def source_opener(
    datasets: Datasets | None, file_roots: Sequence[Path] | None = None
) -> Iterator[OpenSource]:
    """Opens sources with `datasets` resolving `datasets:/NAME@VERSION`; a SQL source's rows
    are staged as Parquet (in chunks, as dataset ingestion does) until the block ends. Files
    are read only under `file_roots` (see `check_source_location`); None: anywhere."""
    staging = Path(tempfile.mkdtemp(prefix="loopline-feature-sources-"))

    def open_source(con: Any, registered: RegisteredView, name: str) -> list[str]:
        view = registered.view
        source = view.source.strip()
        where = f"feature view {registered.ref}"
        check_source_location(where, source, file_roots)
        if source.startswith(DATASET_PREFIX):
            if datasets is None:
                raise InvalidInput(f"{where} reads a dataset version, and no dataset store is open here")
            version = datasets.get(source.removeprefix(DATASET_PREFIX))
            return _files(con, name, [datasets.local_path(version)], "read_parquet")
        if is_sql_source(source):
            try:
                staged = stage_query(view.query or "", source, staging / f"{name}.parquet")
            except InvalidInput as exc:
                raise InvalidInput(f"{where}: {exc}") from None
            return _files(con, name, [staged.path], "read_parquet")
        if "://" in source:
            raise InvalidInput(
                f"{where}: source {source!r:.120} is neither a file, a dataset version nor a database"
            )
        paths = _matches(source)
        if not paths or not all(p.is_file() for p in paths):
            raise InvalidInput(f"{where}: source file {source!r:.200} does not exist")
        _confine(where, source, paths, file_roots)  # the files as listed now, links followed
        csv = all(p.suffix.lower() in (".csv", ".gz") for p in paths)
        return _files(con, name, paths, "read_csv_auto" if csv else "read_parquet")

    try:
        yield open_source
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_source_location(where: str, source: str, roots: Sequence[Path] | None) -> None:
    """Refuse a file source outside `roots` (None: no limit). A server passes its data roots:
    a definition is a remote user's text, and a path in it must not reach the server's own
    files. Dataset versions and database servers are not files of the server; a SQLite or
    DuckDB source is, and its query could attach any other file, so it is refused there."""
    if roots is None:
        return
    source = source.strip()
    if source.startswith(DATASET_PREFIX):
        return
    if is_sql_source(source):
        dialect = source.split("://", 1)[0].split("+", 1)[0].lower()
        if dialect in _FILE_DATABASES:
            raise InvalidInput(
                f"{where}: source {source!r:.200} is a {dialect} file; on this server a SQL source "
                "must be a database server (its query could open any file of the server): register "
                "the rows as a dataset version and use datasets:/NAME@VERSION"
            )
        return
    if "://" in source:
        return  # neither a file nor a database: the opener refuses it
    folders = ", ".join(str(r) for r in roots) or "none are set: LOOPLINE_SERVER_DATA_ROOTS"
    refused = InvalidInput(
        f"{where}: source {source!r:.200} is outside the folders this server reads feature files "
        f"from ({folders}); give an absolute path under one of them, or a dataset version "
        "(datasets:/NAME@VERSION)"
    )
    if any(ord(c) < 32 for c in source) or not os.path.isabs(source):
        raise refused
    parts = Path(source).parts
    fixed = Path(*parts[: next((i for i, p in enumerate(parts) if any(c in p for c in _GLOB)), len(parts))])
    # Lexically first ('..' collapsed), so that nothing outside is even looked at.
    if not any(_within(Path(os.path.normpath(fixed)), root) for root in roots):
        raise refused
    _confine(where, source, [p for p in _matches(source) if p.exists()], roots)


def _within(path: Path, root: Path) -> bool:
    return path.is_relative_to(os.path.normpath(os.path.abspath(root))) or path.is_relative_to(root.resolve())


def _confine(where: str, source: str, paths: list[Path], roots: Sequence[Path] | None) -> None:
    """Refuse files that lead out of `roots` through a symbolic link."""
    if roots is None:
        return
    for path in paths:
        if not any(path.resolve().is_relative_to(root.resolve()) for root in roots):
            raise InvalidInput(
                f"{where}: source {source!r:.200} leads through a link to a file outside the folders "
                "this server reads feature files from"
            )


def _matches(source: str) -> list[Path]:
    """The files a path or a glob names."""
    if any(c in source for c in _GLOB):
        return [Path(p) for p in sorted(glob.glob(source))]
    return [Path(source)]


def _files(con: Any, name: str, paths: list[Path], reader: str) -> list[str]:
    resolved = [str(p.resolve()) for p in paths]
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in resolved)
    con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {reader}([{listed}])")
    return resolved
