"""Parquet tables in the artifact store's filesystem, partitioned in `key=value` folders
(the layout DuckDB, pyarrow and Spark read as partitions).

With a keyring, each data file is stored sealed whole (see `artifacts.encryption`), and
readers open decrypted copies that `readable` makes; without one, nothing is copied."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopline.artifacts.encryption import Keyring, key_id_of, missing_key_message, plaintext_chunks
from loopline.artifacts.rotation import StoredFiles
from loopline.core.errors import EncryptionKeyError, InvalidInput

_PART = re.compile(r"[A-Za-z0-9_.@-]+")


class TableArea:
    """A folder of partitioned Parquet tables; `local` when it is on this machine's disk."""

    def __init__(
        self, url: str, storage_options: dict[str, Any] | None = None, keyring: Keyring | None = None
    ) -> None:
        import fsspec

        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = root.rstrip("/")
        self.local = "file" in self.fs.protocol or "local" in self.fs.protocol
        self.keyring = keyring  # None: files are stored as they are

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
            with open(temporary, "wb") as handle:
                self._write(data, handle)
            os.replace(temporary, path)
        else:
            with self.fs.open(path, "wb") as handle:  # an object store shows a PUT only when complete
                self._write(data, handle)
        return path

    def _write(self, data: pa.Table, handle: IO[bytes]) -> None:
        if self.keyring is None:
            pq.write_table(data, handle)
            return
        buffer = pa.BufferOutputStream()
        pq.write_table(data, buffer)
        writer = self.keyring.writer(handle)
        writer.write(buffer.getvalue())  # a pyarrow buffer: taken without another copy
        writer.close()

    @property
    def readable_fs(self) -> Any:
        """The filesystem of the paths `readable` returns."""
        if self.keyring is None:
            return self.fs
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem()

    def readable(self, paths: Sequence[str]) -> list[str]:
        """Paths of data files (as `files` lists them) that readers such as DuckDB and pyarrow
        can open through `readable_fs`: `paths` themselves without a keyring. With one,
        decrypted copies in the keyring's private folder of this process (mode 0700, on
        memory-backed storage when the machine has it: /dev/shm, else the temporary folder;
        never under the store), under the same partition folders. A copy is made once per
        path, size and modification time: a data file never changes once written."""
        if self.keyring is None:
            return list(paths)
        return [self._plaintext_copy(self._own(path)) for path in paths]

    def _plaintext_copy(self, path: str) -> str:
        assert self.keyring is not None
        info = self.fs.info(path)
        version = f"{info.get('size')}:{info.get('mtime', info.get('LastModified', info.get('ETag')))}"
        folder, _, name = self._relative(path).rpartition("/")
        stamp = hashlib.sha256(version.encode()).hexdigest()[:12]
        copy = self._copies / folder / f"{name.removesuffix('.parquet')}.{stamp}.parquet"
        if copy.exists():
            return str(copy)
        copy.parent.mkdir(parents=True, exist_ok=True)
        what = f"table file {self._relative(path)}"
        with (
            self.fs.open(path, "rb") as source,
            tempfile.NamedTemporaryFile(dir=copy.parent, prefix=".partial-", delete=False) as out,
        ):
            try:
                for chunk in plaintext_chunks(source, self.keyring, what):
                    out.write(chunk)
            except BaseException:
                os.unlink(out.name)
                raise
        os.replace(out.name, copy)
        return str(copy)

    def raise_if_sealed(self, paths: Sequence[str]) -> None:
        """With no keyring, the clear error for the first of `paths` that is encrypted: for
        readers that failed on files they took for Parquet (never checked up front: without
        keys, reading stays as fast as it was)."""
        if self.keyring is not None:
            return
        for path in paths:
            what = f"table file {self._relative(path)}"
            with self.fs.open(path, "rb") as handle:
                key_id = key_id_of(handle, what)
            if key_id is not None:
                raise EncryptionKeyError(missing_key_message(what, key_id))

    @property
    def _copies(self) -> Path:
        """This area's folder of decrypted copies (one per area: two stores never mix)."""
        assert self.keyring is not None
        return self.keyring.copies.path / "tables" / hashlib.sha256(self.url.encode()).hexdigest()[:12]

    def rotation_files(self) -> StoredFiles:
        """The data files of every table, as key rotation sees them (`loopline encryption`)."""

        def paths() -> list[str]:
            found = self.fs.find(self.root) if self.fs.exists(self.root) else []
            return [p for p in found if p.endswith(".parquet") and not p.rsplit("/", 1)[-1].startswith(".")]

        return StoredFiles(
            self.fs,
            paths,
            lambda path: f"table file {self._relative(path)}",
            (lambda path: path.rpartition("/")[0]) if self.local else None,
        )

    def _relative(self, path: str) -> str:
        """`path` (under the area's root) relative to the root."""
        return path[len(self.root) + 1 :]

    def _own(self, path: str) -> str:
        """`path` when it is a data file of this area (as `files` lists them)."""
        inside = path.startswith(self.root + "/") and ".." not in path.split("/")
        if not inside or not path.endswith(".parquet"):
            raise InvalidInput(f"{path!r} is not a data file of the table area {self.url}")
        return path

    def read_file(self, path: str) -> pa.Table:
        """The rows of one data file (one that `files` listed), without partition columns."""
        return pq.read_table(self.readable([self._own(path)])[0], filesystem=self.readable_fs)

    def rewrite(self, path: str, data: pa.Table) -> str | None:
        """Replace data file `path` by one holding `data`: the new file appears whole, then the
        old one is removed; with no rows left the file is removed. Returns the new path."""
        self._own(path)
        folder, _, _ = path.rpartition("/")
        partitions = [tuple(part.split("=", 1)) for part in self._relative(folder).split("/")[1:]]
        table = self._relative(folder).split("/")[0]
        written = self.append(table, [(k, v) for k, v in partitions], data) if data.num_rows else None
        self.fs.rm_file(path)
        if self.keyring is not None:  # the old file's decrypted copies held the rows too
            relative, _, name = self._relative(path).rpartition("/")
            for copy in (self._copies / relative).glob(f"{name.removesuffix('.parquet')}.*.parquet"):
                copy.unlink(missing_ok=True)
        return written

    def files(self, table: str, partitions: Sequence[tuple[str, str]] = ()) -> list[str]:
        """Every data file of the table (or of a partition of it), in name order."""
        pattern = self.folder(table, partitions) + "/**/*.parquet"
        found = [p for p in self.fs.glob(pattern) if not p.rsplit("/", 1)[-1].startswith(".")]
        direct = self.fs.glob(self.folder(table, partitions) + "/*.parquet")
        return sorted(set(found) | {p for p in direct if not p.rsplit("/", 1)[-1].startswith(".")})

    def read(self, table: str, partitions: Sequence[tuple[str, str]] = ()) -> pa.Table:
        """All of a table's rows, partition columns included; an empty table if none."""
        stored = self.files(table, partitions)
        try:
            return self._read(table, self.readable(stored))
        except (OSError, pa.ArrowException):
            self.raise_if_sealed(stored)
            raise

    def _read(self, table: str, paths: list[str]) -> pa.Table:
        import pyarrow.dataset as ds

        if not paths:
            return pa.table({})
        base = self.folder(table) if self.keyring is None else str(self._copies / table)
        options = {"filesystem": self.readable_fs, "format": "parquet", "partitioning": "hive"}
        discovered = ds.dataset(paths, partition_base_dir=base, **options)
        # Files may disagree: a column logged as int64 by one model version and as double by
        # another. Read them all under one schema that widens such columns.
        files = [pq.read_schema(path, filesystem=self.readable_fs) for path in paths]
        schema = pa.unify_schemas([discovered.schema, *files], promote_options="permissive")
        return ds.dataset(paths, partition_base_dir=base, schema=schema, **options).to_table()
