"""DatasetService over HTTP. The data is staged as Parquet here (a CSV read, a SQL query
run, on this side) and uploaded; the server profiles and stores it. Reads download the
Parquet file once, verified against its sha256."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopline.client.connection import ServerConnection, segment, texts
from loopline.client.tracking import whoami
from loopline.core.datasets import DatasetVersion
from loopline.core.entities import Principal
from loopline.core.errors import NotFound
from loopline.core.wire import decode
from loopline.data.datasets import DatasetService, Source, parse_dataset_ref
from loopline.data.ingest import Progress
from loopline.monitoring.profile import ReferenceProfile
from loopline.registry.names import dataset_name

DATA_FILE = "data.parquet"


def _versions(name: str) -> str:
    return f"/datasets/{segment(dataset_name(name))}/versions"


class RemoteDatasetService(DatasetService):
    def __init__(self, connection: ServerConnection, principal: Principal | None = None) -> None:
        self._connection = connection
        self.principal = principal or whoami(connection)
        self._downloads: Path | None = None

    # Built on the methods below.
    read = DatasetService.read
    diff = DatasetService.diff

    def register(
        self,
        name: str,
        data: Source,
        *,
        sql_url: str | None = None,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        encoding: str = "utf-8",
        progress: Progress | None = None,
    ) -> tuple[DatasetVersion, bool]:
        with tempfile.TemporaryDirectory(prefix="loopline-dataset-") as tmp:
            staged = self._stage(data, Path(tmp, DATA_FILE), sql_url, encoding, progress)
            upload = self._connection.call("POST", "/uploads")["upload_id"]
            self._connection.upload(f"/uploads/{upload}/files/{DATA_FILE}", staged.path)
        body = {"upload_id": upload, "description": description, "tags": texts(tags)}
        found = self._connection.call("POST", _versions(name), json=body)
        return decode(DatasetVersion, found["version"]), bool(found["created"])

    def get(self, ref: str, version: int | None = None) -> DatasetVersion:
        name, parsed = parse_dataset_ref(ref)
        wanted = version if version is not None else parsed
        if wanted is None:
            newest = self.versions(name)
            if not newest:
                raise NotFound(f"dataset {name!r} does not exist")
            return newest[-1]
        return decode(DatasetVersion, self._connection.call("GET", f"{_versions(name)}/{wanted}"))

    def list_datasets(self) -> list[DatasetVersion]:
        return [decode(DatasetVersion, d) for d in self._connection.pages("/datasets")]

    def versions(self, name: str) -> list[DatasetVersion]:
        return [decode(DatasetVersion, d) for d in self._connection.pages(_versions(name))]

    def versions_with_digest(self, digest: str) -> list[DatasetVersion]:
        found = self._connection.pages("/dataset-versions", params={"digest": digest})
        return [decode(DatasetVersion, d) for d in found]

    def local_path(self, version: DatasetVersion) -> Path:
        if self._downloads is None:
            self._downloads = Path(tempfile.mkdtemp(prefix="loopline-datasets-"))
            weakref.finalize(self, shutil.rmtree, self._downloads, True)
        target = self._downloads / f"{version.data_blob}.parquet"
        if not target.exists():
            route = f"{_versions(version.name)}/{version.version}/data"
            self._connection.download(route, target, sha256=version.data_blob)
        return target

    def reference_profile(self, version: DatasetVersion) -> ReferenceProfile:
        route = f"{_versions(version.name)}/{version.version}/profile"
        return ReferenceProfile.from_dict(self._connection.call("GET", route))
