"""One authenticated HTTP connection to a loopline server, turning its JSON errors back
into the exceptions the services raise, so callers cannot tell remote from local."""

from __future__ import annotations

import hashlib
import json as stdlib_json
import os
import ssl
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpx
import orjson

from loopline.core.errors import ArtifactCorrupted, InvalidInput, LooplineError, StoreError, error_from_code

API = "/api/v1"
RETRIES = 8  # of a request answered 429 or 503
_CA_HINT = "; if a private CA signed the server's certificate, set LOOPLINE_TLS_CA to that CA's PEM file"
MAX_WAIT_S = 75.0  # in all: a lockout's minute (Retry-After) passes; a dead server is told sooner


def check_server_uri(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput(f"server URI {uri!r} must be http://host:port or https://host[:port]")
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise InvalidInput(
            f"server URI {uri!r} must not carry credentials, a query or a fragment; "
            "send the token with LOOPLINE_TOKEN"
        )
    return uri.rstrip("/")


def segment(value: str | int) -> str:
    """One URL path segment: every '/' and '%' in a name is escaped."""
    return quote(str(value), safe="")


def path_segments(name: str) -> str:
    """A relative path (artifact or model file) as URL segments."""
    return quote(name, safe="/")


def texts(values: Mapping[str, Any] | None) -> dict[str, str]:
    """Params and tags travel as text, as they are stored."""
    return {k: str(v) for k, v in (values or {}).items()}


def tls_context(ca_bundle: Path) -> ssl.SSLContext:
    """Verification of server certificates against `ca_bundle` (PEM): for a server whose
    certificate a private CA signed."""
    try:
        return ssl.create_default_context(cafile=os.fspath(ca_bundle))
    except ssl.SSLError:  # before OSError, of which it is a kind
        raise InvalidInput(f"LOOPLINE_TLS_CA {ca_bundle}: not a PEM certificate bundle") from None
    except OSError as exc:
        raise InvalidInput(f"LOOPLINE_TLS_CA {ca_bundle}: {exc.strerror or exc}") from None


class ServerConnection:
    def __init__(
        self,
        uri: str,
        token: str | None,
        timeout: float = 60.0,
        retries: int = RETRIES,
        ca_bundle: Path | None = None,
    ) -> None:
        self.uri = check_server_uri(uri)
        self.retries = retries
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.uri + API,
            headers=headers,
            timeout=timeout,
            # Retries: of connection failures only. Certificates are always verified (by the
            # transport, which the client's own `verify` does not reach): against `ca_bundle`
            # when given, else the CAs httpx trusts by default.
            transport=httpx.HTTPTransport(
                retries=3, verify=True if ca_bundle is None else tls_context(ca_bundle)
            ),
            follow_redirects=False,
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | Iterable[bytes] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON answer, or None for 204."""
        body = _encode(json) if json is not None else content
        headers = {"content-type": "application/json"} if json is not None else None
        response = self._request(method, path, params, content=body, headers=headers)
        if response.status_code == 204 or not response.content:
            return None
        return orjson.loads(response.content)

    def text(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """A document the server renders (an HTML report)."""
        return self._request("GET", path, params).text

    def content(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        """A small file the server sends (a plot)."""
        return self._request("GET", path, params).content

    def _request(
        self, method: str, path: str, params: Mapping[str, Any] | None, **kwargs: Any
    ) -> httpx.Response:
        """Send the request; a 429 (too many attempts) or 503 (the store is busy or down) is
        retried with backoff, after Retry-After when the server says, unless the body was a
        stream that cannot be sent twice."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        repeatable = not isinstance(kwargs.get("content"), Iterable) or isinstance(kwargs["content"], bytes)
        waited = 0.0
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, params=query, **kwargs)
            except httpx.HTTPError as exc:
                hint = _CA_HINT if "CERTIFICATE_VERIFY_FAILED" in str(exc) else ""
                raise StoreError(f"cannot reach the loopline server at {self.uri}: {exc}{hint}") from None
            wait = _backoff(response, attempt)
            if response.status_code not in (429, 503) or attempt == self.retries or not repeatable:
                break
            if waited + wait > MAX_WAIT_S:
                break
            time.sleep(wait)
            waited += wait
        if response.status_code >= 400:
            raise _error(response)
        return response

    def pages(self, path: str, params: Mapping[str, Any] | None = None, size: int = 1000) -> list[Any]:
        """Every item of a paginated listing."""
        items: list[Any] = []
        token: str | None = None
        while True:
            found = self.call(
                "GET", path, params={**(params or {}), "max_results": size, "page_token": token}
            )
            items.extend(found["items"])
            token = found["next_page_token"]
            if token is None:
                return items

    def download(self, path: str, target: Path, sha256: str | None = None) -> None:
        """Stream a file to `target`, which appears only complete and, given `sha256`, verified."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".partial-{target.name}")
        hasher = hashlib.sha256()
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        hasher.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            partial.unlink(missing_ok=True)
            raise StoreError(f"download of {path} from {self.uri} failed: {exc}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if sha256 is not None and hasher.hexdigest() != sha256:
            partial.unlink(missing_ok=True)
            raise ArtifactCorrupted(f"{path} arrived with sha256 {hasher.hexdigest()}, not {sha256}")
        os.replace(partial, target)

    def upload(self, path: str, source: Path) -> Any:
        with open(source, "rb") as handle:
            return self.call("PUT", path, content=iter(lambda: handle.read(1 << 20), b""))

    def close(self) -> None:
        self._http.close()


def _backoff(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before trying again: Retry-After if given, else exponential."""
    asked = response.headers.get("retry-after", "")
    wait = float(asked) if asked.replace(".", "", 1).isdigit() else 0.2 * 2**attempt
    return wait


def _encode(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # a lone surrogate: escaped, for the server to judge as it would locally
        return stdlib_json.dumps(value, ensure_ascii=True).encode()


def _error(response: httpx.Response) -> LooplineError:
    try:
        error = orjson.loads(response.content)["error"]
        return error_from_code(error["code"], error["message"], error.get("details") or {})
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return StoreError(f"the server answered {response.status_code}: {response.text[:200]}")
