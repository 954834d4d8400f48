"""Data sent to a server: staged here as one Parquet file and uploaded, never pickled."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.client.connection import ServerConnection

if TYPE_CHECKING:
    import pandas as pd

DATA_FILE = "data.parquet"  # the one file of an upload of rows


def upload_frame(connection: ServerConnection, frame: pd.DataFrame) -> str:
    """Upload `frame` as the Parquet file `data.parquet` of a new upload; returns its id."""
    from loopline.data.ingest import stage_frame

    with tempfile.TemporaryDirectory(prefix="loopline-upload-") as tmp:
        staged = stage_frame(frame, Path(tmp, DATA_FILE))
        upload: str = connection.call("POST", "/uploads")["upload_id"]
        connection.upload(f"/uploads/{upload}/files/{DATA_FILE}", staged.path)
    return upload
