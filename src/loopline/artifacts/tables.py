"""Parquet tables in the artifact store's filesystem, partitioned in `key=value` folders
(the layout DuckDB, pyarrow and Spark read as partitions)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopline.core.errors import InvalidInput

_PART = re.compile(r"[A-Za-z0-9_.@-]+")


class TableArea:
    """A folder of partitioned Parquet tables; `local` when it is on this machine's disk."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = root.rstrip("/")
        self.local = "file" in self.fs.protocol or "local" in self.fs.protocol

    def folder(self, table: str, partitions: Sequence[tuple[str, str]] = ()) -> str:
        for part in (table, *(p for kv in partitions for p in kv)):
            if not _PART.fullmatch(part) or part in (".", ".."):
                raise InvalidInput(f"{part!r} cannot name a table or a partition")
        return "/".join([self.root, table, *(f"{key}={value}" for key, value in partitions)])

    def append(self, table: str, partitions: Sequence[tuple[str, str]], data: pa.Table) -> str:
        """Write `data` as a new file of the partition; the file appears whole or not at all."""
        folder = self.folder(table, partitions)
        name = f"part-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
        path = f"{folder}/{name}"
        if self.local:
            os.makedirs(folder, exist_ok=True)
            temporary = f"{folder}/.{name}.tmp"
            pq.write_table(data, temporary)
            os.replace(temporary, path)
        else:
            with self.fs.open(path, "wb") as handle:  # an object store shows a PUT only when complete
                pq.write_table(data, handle)
        return path

    def files(self, table: str, partitions: Sequence[tuple[str, str]] = ()) -> list[str]:
        """Every data file of the table (or of a partition of it), in name order."""
        pattern = self.folder(table, partitions) + "/**/*.parquet"
        found = [p for p in self.fs.glob(pattern) if not p.rsplit("/", 1)[-1].startswith(".")]
        direct = self.fs.glob(self.folder(table, partitions) + "/*.parquet")
        return sorted(set(found) | {p for p in direct if not p.rsplit("/", 1)[-1].startswith(".")})

    def read(self, table: str, partitions: Sequence[tuple[str, str]] = ()) -> pa.Table:
        """All of a table's rows, partition columns included; an empty table if none."""
        import pyarrow.dataset as ds

        paths = self.files(table, partitions)
        if not paths:
            return pa.table({})
        options = {"filesystem": self.fs, "format": "parquet", "partitioning": "hive"}
        discovered = ds.dataset(paths, partition_base_dir=self.folder(table), **options)
        # Files may disagree: a column logged as int64 by one model version and as double by
        # another. Read them all under one schema that widens such columns.
        files = [pq.read_schema(path, filesystem=self.fs) for path in paths]
        schema = pa.unify_schemas([discovered.schema, *files], promote_options="permissive")
        return ds.dataset(paths, partition_base_dir=self.folder(table), schema=schema, **options).to_table()
