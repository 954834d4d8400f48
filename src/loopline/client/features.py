"""The feature store over HTTP. Entity rows are staged as Parquet here and uploaded (as a
dataset's rows are); the server joins the features and the result comes back as a Parquet
file, verified against its sha256, so a training set never passes through JSON."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.client.connection import ServerConnection, segment
from loopline.client.staging import DATA_FILE
from loopline.core.datasets import DatasetVersion
from loopline.core.features import Entity, FeatureView, RegisteredView
from loopline.core.wire import decode
from loopline.services import Applied, EntityRows, Materialized
from loopline.services.features import Freshness

if TYPE_CHECKING:
    import pyarrow as pa


class RemoteFeatureService:
    """The server's feature store, as the token's owner."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    def apply(self, entities: Sequence[Entity] = (), views: Sequence[FeatureView] = ()) -> Applied:
        body = {"entities": [e.to_dict() for e in entities], "feature_views": [v.to_dict() for v in views]}
        return decode(Applied, self._connection.call("POST", "/features/apply", json=body))

    def entities(self) -> list[Entity]:
        return [decode(Entity, e) for e in self._connection.pages("/features/entities")]

    def views(self) -> list[RegisteredView]:
        return [decode(RegisteredView, v) for v in self._connection.pages("/features/views")]

    def view(self, ref: str) -> RegisteredView:
        return decode(RegisteredView, self._connection.call("GET", f"/features/views/{segment(ref)}"))

    def versions(self, name: str) -> list[RegisteredView]:
        found = self._connection.pages(f"/features/views/{segment(name)}/versions")
        return [decode(RegisteredView, v) for v in found]

    def get_historical(
        self,
        entity_rows: EntityRows,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_timestamp",
        full_names: bool = False,
        output: Path | None = None,
    ) -> pa.Table | None:
        """The server joins; the result is downloaded to `output` (Parquet), or read into an
        Arrow table from a temporary file."""
        import pyarrow.parquet as pq

        body = {"features": _names(features), "timestamp_column": timestamp_column, "full_names": full_names}
        body["upload_id"] = self._upload(entity_rows)
        result = self._connection.call("POST", "/features/historical", json=body)
        route = f"/features/historical/{segment(result['result_id'])}"
        if output is not None:
            self._connection.download(route, output, sha256=result["sha256"])
            return None
        with tempfile.TemporaryDirectory(prefix="loopline-historical-") as tmp:
            target = Path(tmp, "historical.parquet")
            self._connection.download(route, target, sha256=result["sha256"])
            table: pa.Table = pq.read_table(target)
        return table

    def register_training_set(
        self,
        name: str,
        entity_rows: EntityRows,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_timestamp",
        full_names: bool = False,
        description: str = "",
    ) -> DatasetVersion:
        body = {"name": name, "features": _names(features), "timestamp_column": timestamp_column,
                "full_names": full_names, "description": description}  # fmt: skip
        body["upload_id"] = self._upload(entity_rows)
        return decode(DatasetVersion, self._connection.call("POST", "/features/training-sets", json=body))

    def materialize(self, ref: str, *, end: datetime | None = None) -> Materialized:
        # A time without a zone is the local time here, as `datetime.timestamp` takes it locally.
        body = {"end": None if end is None else end.astimezone().isoformat()}
        found = self._connection.call("POST", f"/features/views/{segment(ref)}/materialize", json=body)
        return decode(Materialized, found)

    def get_online(
        self, entities: Mapping[str, Sequence[Any]], features: Sequence[str], *, full_names: bool = False
    ) -> dict[str, list[Any]]:
        body = {
            "entities": {name: list(values) for name, values in entities.items()},
            "features": _names(features),
            "full_names": full_names,
        }
        found: dict[str, list[Any]] = self._connection.call("POST", "/features/online", json=body)
        return found

    def freshness(self, refs: Sequence[str] = ()) -> list[Freshness]:
        found = self._connection.call("GET", "/features/freshness", params={"view": list(refs)})
        return [decode(Freshness, f) for f in found]

    def _upload(self, rows: EntityRows) -> str:
        """Stage the entity rows (a frame, an Arrow table, a CSV or Parquet file) as Parquet
        and upload them; the id of the upload."""
        from loopline.data.ingest import stage

        with tempfile.TemporaryDirectory(prefix="loopline-entity-rows-") as tmp:
            staged = stage(rows, Path(tmp, DATA_FILE))
            upload: str = self._connection.call("POST", "/uploads")["upload_id"]
            self._connection.upload(f"/uploads/{upload}/files/{DATA_FILE}", staged.path)
        return upload


def _names(features: Sequence[str]) -> list[str]:
    """One feature may be given as a lone string, as the local service takes it."""
    return [features] if isinstance(features, str) else list(features)
