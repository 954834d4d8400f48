"""The artifact browser: a folder's entries, previews by kind, and sandboxed frames.

HTML and SVG artifacts are only ever shown in a frame whose document is sandboxed by its
own Content-Security-Policy (no same-origin rights), so opening one directly is as safe as
framing it. Other kinds are previewed as escaped text, a table or an image.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.responses import Response

from loopline.core.entities import ArtifactEntry
from loopline.core.errors import InvalidInput
from loopline.services.tracking import Tracking
from loopline.ui.rendering import SANDBOXED_HEADERS

TEXT_SUFFIXES = frozenset(
    [
        ".txt",
        ".log",
        ".md",
        ".py",
        ".csv",
        ".tsv",
        ".cfg",
        ".ini",
        ".toml",
        ".yaml",
        ".yml",
        ".json",
        ".jsonl",
        ".xml",
        ".sql",
        ".sh",
    ]
)
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
FRAMED_TYPES = {".html": "text/html", ".htm": "text/html", ".svg": "image/svg+xml"}
MAX_TEXT_BYTES = 256 * 1024
MAX_FRAMED_BYTES = 32 * 1024 * 1024
TABLE_PAGE = 50


@dataclass
class Listing:
    """One folder of a run's artifacts: its sub-folders and its files."""

    folders: list[str] = field(default_factory=list)
    files: list[ArtifactEntry] = field(default_factory=list)


@dataclass
class Preview:
    """What the browser shows of one artifact: `kind` is text, image, table, frame or none."""

    entry: ArtifactEntry
    kind: str
    text: str = ""
    truncated: bool = False
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    offset: int = 0
    total_rows: int = 0


def artifact_listing(tracking: Tracking, run_id: str, folder: str) -> Listing:
    """The entries directly inside `folder` ("" is the top)."""
    prefix = folder.strip("/") + "/" if folder.strip("/") else ""
    listing = Listing()
    folders: set[str] = set()
    for entry in tracking.list_artifacts(run_id, prefix):
        rest = entry.name[len(prefix) :]
        if "/" in rest:
            folders.add(prefix + rest.split("/", 1)[0])
        else:
            listing.files.append(entry)
    listing.folders = sorted(folders)
    return listing


def artifact_preview(tracking: Tracking, run_id: str, name: str, offset: int) -> Preview:
    """A preview of artifact `name`, by the kind its name says."""
    entry, path = tracking.artifact_file(run_id, name)
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in IMAGE_TYPES:
        return Preview(entry, "image")
    if suffix in FRAMED_TYPES:
        return Preview(entry, "frame")
    if suffix == ".parquet":
        total = pq.ParquetFile(path).metadata.num_rows
        with duckdb.connect() as db:
            page: pa.Table = db.execute(
                "SELECT * FROM read_parquet(?) LIMIT ? OFFSET ?", [str(path), TABLE_PAGE, offset]
            ).to_arrow_table()
        rows = [list(row.values()) for row in page.to_pylist()]
        return Preview(entry, "table", columns=page.column_names, rows=rows, offset=offset, total_rows=total)
    if suffix in TEXT_SUFFIXES or entry.media_type.startswith("text/"):
        with open(path, "rb") as f:
            head = f.read(MAX_TEXT_BYTES + 1)
        text = head[:MAX_TEXT_BYTES].decode("utf-8", errors="replace")
        if suffix == ".json" and len(head) <= MAX_TEXT_BYTES:
            with contextlib.suppress(ValueError):  # else shown as it is
                text = json.dumps(json.loads(text), indent=2)
        return Preview(entry, "text", text=text, truncated=len(head) > MAX_TEXT_BYTES)
    return Preview(entry, "none")


def framed_artifact(tracking: Tracking, run_id: str, name: str) -> Response:
    """An image, HTML or SVG artifact's bytes, in a sandbox of its own: scripts of an HTML
    report may run, but in an opaque origin, with no access to this server's pages or cookies."""
    suffix = PurePosixPath(name).suffix.lower()
    media_type = IMAGE_TYPES.get(suffix) or FRAMED_TYPES.get(suffix)
    if media_type is None:
        raise InvalidInput(f"artifact {name!r} is not an image, HTML or SVG file; download it instead")
    entry, path = tracking.artifact_file(run_id, name)
    if entry.size > MAX_FRAMED_BYTES:
        raise InvalidInput(
            f"artifact {name!r} is {entry.size:,} bytes, too large to show; download it instead"
        )
    headers = {**SANDBOXED_HEADERS, "cache-control": "private, max-age=3600"}
    return Response(path.read_bytes(), media_type=media_type, headers=headers)
