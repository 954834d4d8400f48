"""The model registry over HTTP. Models are registered by uploading their files, which the
server checks against their hashes without loading them; loading happens here."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loopline.artifacts import destination, files_under
from loopline.client.connection import ServerConnection, path_segments, segment, texts
from loopline.core.access import AliasRequest, Role, check_role
from loopline.core.entities import DEFAULT_PROJECT, Principal
from loopline.core.errors import AlreadyExists, NotFound, PermissionDenied
from loopline.core.registry import AliasEvent, ModelVersion, RegisteredModel, loadable
from loopline.core.uris import ModelRef
from loopline.core.wire import decode
from loopline.models import LoadedModel, load_version, read_metadata
from loopline.models.flavors import LoadOptions


def _model(name: str) -> str:
    return f"/models/{segment(name)}"


def _version(name: str, version: int) -> str:
    return f"{_model(name)}/versions/{segment(version)}"


class RemoteRegistryService:
    """The server's registry, as the token's owner; models load here, from verified downloads."""

    def __init__(self, connection: ServerConnection, principal: Principal) -> None:
        self._connection = connection
        self.principal = principal

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._connection.call(method, path, **kwargs)

    def get_or_create_model(self, name: str, project: str = DEFAULT_PROJECT) -> RegisteredModel:
        with contextlib.suppress(NotFound):
            return self.get_model(name)
        try:
            return self.create_model(name, project=project)
        except AlreadyExists:  # registered by a concurrent caller in between
            return self.get_model(name)

    def load(
        self,
        uri: str | ModelRef,
        *,
        trust: bool = False,
        trusted_types: Sequence[str] = (),
        module_factory: Any = None,
        onnx: bool = False,
    ) -> LoadedModel:
        options = LoadOptions(
            trust=trust, trusted_types=tuple(trusted_types), module_factory=module_factory, onnx=onnx
        )
        return load_version(lambda folder: self.download(uri, folder), options)

    def _my_role(self, project: str | None, needed: Role) -> None:
        """The server's roles of the caller, checked as the server would (`None`: any project)."""
        me = self._call("GET", "/whoami")
        if me["admin"]:
            return
        roles = {name: Role(role) for name, role in me["roles"].items()}
        if project is not None:
            check_role(me["name"], project, roles.get(project), needed)
        elif not any(role.allows(needed) for role in roles.values()):
            raise PermissionDenied(f"{me['name']} is not {needed.value} on any project")

    def require_model_role(self, name: str, needed: Role) -> None:
        self._my_role(self.get_model(name).project, needed)

    def require_role_somewhere(self, needed: Role) -> None:
        self._my_role(None, needed)

    # registered models ---------------------------------------------------------------

    def create_model(
        self,
        name: str,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> RegisteredModel:
        body = {"name": name, "description": description, "tags": texts(tags), "project": project}
        return decode(RegisteredModel, self._call("POST", "/models", json=body))

    def get_model(self, name: str) -> RegisteredModel:
        return decode(RegisteredModel, self._call("GET", _model(name)))

    def list_models(self) -> list[RegisteredModel]:
        return [decode(RegisteredModel, m) for m in self._connection.pages("/models")]

    def update_model(
        self, name: str, description: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> RegisteredModel:
        body = {"description": description, "tags": texts(tags)}
        return decode(RegisteredModel, self._call("PATCH", _model(name), json=body))

    def delete_model(self, name: str) -> None:
        self._call("DELETE", _model(name))

    # versions --------------------------------------------------------------------------

    def register(
        self,
        name: str,
        directory: Path,
        *,
        run_id: str | None = None,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        project: str | None = None,
    ) -> ModelVersion:
        read_metadata(directory)  # a clear error here for a folder that holds no saved model
        upload = self._call("POST", "/uploads")["upload_id"]
        for path, name_in_model in files_under(directory):
            self._connection.upload(f"/uploads/{upload}/files/{path_segments(name_in_model)}", path)
        body = {
            "upload_id": upload, "run_id": run_id, "description": description,
            "tags": texts(tags), "project": project,
        }  # fmt: skip
        return decode(ModelVersion, self._call("POST", f"{_model(name)}/versions", json=body))

    def get_version(self, name: str, version: int) -> ModelVersion:
        return decode(ModelVersion, self._call("GET", _version(name, version)))

    def list_versions(self, name: str) -> list[ModelVersion]:
        return [decode(ModelVersion, v) for v in self._connection.pages(f"{_model(name)}/versions")]

    def trust_code(self, name: str, version: int, trusted: bool = True) -> ModelVersion:
        body = {"trusted": trusted}
        return decode(ModelVersion, self._call("PUT", f"{_version(name, version)}/trusted-code", json=body))

    def trust_types(self, name: str, version: int, types: Sequence[str]) -> ModelVersion:
        body = {"types": list(types)}
        return decode(ModelVersion, self._call("PUT", f"{_version(name, version)}/trusted-types", json=body))

    def update_version(
        self, name: str, version: int, description: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> ModelVersion:
        body = {"description": description, "tags": texts(tags)}
        return decode(ModelVersion, self._call("PATCH", _version(name, version), json=body))

    def delete_version(self, name: str, version: int) -> None:
        self._call("DELETE", _version(name, version))

    def resolve(self, uri: str | ModelRef) -> ModelVersion:
        return decode(ModelVersion, self._call("GET", "/resolve", params={"uri": str(uri)}))

    def download(self, uri: str | ModelRef, target: Path) -> ModelVersion:
        version = loadable(self.resolve(uri))
        for path, (digest, _) in sorted(version.files.items()):
            route = f"{_version(version.model, version.version)}/files/{path_segments(path)}"
            self._connection.download(route, destination(target, path), digest)
        return version

    def version_file(self, name: str, version: int, path: str) -> Path:
        found = loadable(self.resolve(ModelRef(name, version=version)))
        if path not in found.files:
            raise NotFound(f"{found.uri} has no file {path!r}")
        digest = found.files[path][0]
        cached = Path(tempfile.gettempdir(), "loopline-blobs", digest)
        if not cached.exists():
            route = f"{_version(found.model, found.version)}/files/{path_segments(path)}"
            self._connection.download(route, cached, digest)
        return cached

    # aliases ---------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> AliasEvent:
        route = f"{_model(name)}/aliases/{segment(alias)}"
        body = {"version": version, "reason": reason}
        return decode(AliasEvent, self._call("PUT", route, json=body))

    def remove_alias(self, name: str, alias: str, *, reason: str = "") -> AliasEvent:
        route = f"{_model(name)}/aliases/{segment(alias)}"
        return decode(AliasEvent, self._call("DELETE", route, params={"reason": reason}))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        found = self._connection.pages(f"{_model(name)}/alias-history", {"alias": alias})
        return [decode(AliasEvent, e) for e in found]

    def protect_alias(self, name: str, alias: str) -> None:
        self._call("PUT", f"{_model(name)}/aliases/{segment(alias)}/protection")

    def unprotect_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", f"{_model(name)}/aliases/{segment(alias)}/protection")

    def protected_aliases(self, name: str) -> list[str]:
        found: list[str] = self._call("GET", f"{_model(name)}/protected-aliases")
        return found

    def alias_requests(self, name: str | None = None, status: str | None = None) -> list[AliasRequest]:
        found = self._connection.pages("/alias-requests", {"model": name, "status": status})
        return [decode(AliasRequest, r) for r in found]

    def approve(self, request_id: int, reason: str = "") -> AliasEvent:
        found = self._call("POST", f"/alias-requests/{segment(request_id)}/approve", json={"reason": reason})
        return decode(AliasEvent, found)

    def reject(self, request_id: int, reason: str = "") -> AliasRequest:
        found = self._call("POST", f"/alias-requests/{segment(request_id)}/reject", json={"reason": reason})
        return decode(AliasRequest, found)
