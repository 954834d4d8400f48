"""Datasets over HTTP. The data is staged as Parquet here (a CSV read, a SQL query run, on
this side) and uploaded; the server profiles and stores it. Reads download the Parquet file
once, verified against its sha256."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.client.connection import ServerConnection, segment, texts
from loopline.client.staging import DATA_FILE
from loopline.core.datasets import DatasetVersion, DataValidation, ValidationReport, parse_dataset_ref
from loopline.core.entities import Principal
from loopline.core.errors import NotFound
from loopline.core.names import dataset_name
from loopline.core.wire import decode
from loopline.profiling.diff import DatasetDiff, diff_versions
from loopline.profiling.profile import ReferenceProfile
from loopline.services import DataSource, Progress

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.specs.contract import Contract


def _versions(name: str) -> str:
    return f"/datasets/{segment(dataset_name(name))}/versions"


class RemoteDatasetService:
    """The server's datasets, as the token's owner."""

    def __init__(self, connection: ServerConnection, principal: Principal) -> None:
        self._connection = connection
        self.principal = principal
        self._downloads: Path | None = None

    def register(
        self,
        name: str,
        data: DataSource,
        *,
        sql_url: str | None = None,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        encoding: str = "utf-8",
        progress: Progress | None = None,
        contract: Contract | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """The rows are staged here and uploaded; the server checks them against `contract`
        and masks or hashes its columns (with its own key) before it stores anything."""
        from loopline.data.ingest import stage

        with tempfile.TemporaryDirectory(prefix="loopline-dataset-") as tmp:
            staged = stage(data, Path(tmp, DATA_FILE), sql_url, encoding, progress)
            upload = self._connection.call("POST", "/uploads")["upload_id"]
            self._connection.upload(f"/uploads/{upload}/files/{DATA_FILE}", staged.path)
        body: dict[str, Any] = {"upload_id": upload, "description": description, "tags": texts(tags)}
        if contract is not None:
            body["contract"] = contract.model_dump(mode="json")
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

    def read(self, version: DatasetVersion, columns: Sequence[str] | None = None) -> pa.Table:
        from loopline.data.ingest import read_version

        return read_version(self.local_path(version), version, columns)

    def reference_profile(self, version: DatasetVersion) -> ReferenceProfile:
        route = f"{_versions(version.name)}/{version.version}/profile"
        return ReferenceProfile.from_dict(self._connection.call("GET", route))

    def diff(self, old: DatasetVersion, new: DatasetVersion) -> DatasetDiff:
        return diff_versions(old, new, self.reference_profile(old), self.reference_profile(new))

    def validate(
        self,
        data: Any,
        contract: Contract,
        *,
        run_id: str | None = None,
        samples: int = 5,
        source: str | None = None,
    ) -> ValidationReport:
        """The server checks the data (staged and uploaded here, or a stored version by its
        URI) and records the verdict: the evidence is its own."""
        from loopline.data.ingest import stage

        body: dict[str, Any] = {"contract": contract.model_dump(mode="json"), "run_id": run_id}
        body.update(samples=samples, source=source)
        if isinstance(data, DatasetVersion):
            body["dataset"] = data.uri
        else:
            with tempfile.TemporaryDirectory(prefix="loopline-validate-") as tmp:
                staged = stage(data, Path(tmp, DATA_FILE), None, "utf-8", None)
                upload = self._connection.call("POST", "/uploads")["upload_id"]
                self._connection.upload(f"/uploads/{upload}/files/{DATA_FILE}", staged.path)
            body["upload_id"] = upload
            body["source"] = source or staged.source
        return decode(ValidationReport, self._connection.call("POST", "/validations", json=body))

    def validations(self, run_id: str) -> list[DataValidation]:
        found = self._connection.pages(f"/runs/{segment(run_id)}/validations")
        return [decode(DataValidation, v) for v in found]
