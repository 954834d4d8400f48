"""The artifact store: content-addressed blobs, and the rules for user-chosen names."""

from loopline.artifacts.blobs import Blob, BlobStore
from loopline.artifacts.names import check_artifact_name, destination, files_under, media_type

__all__ = ["Blob", "BlobStore", "check_artifact_name", "destination", "files_under", "media_type"]
