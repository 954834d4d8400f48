"""HTTPS for loopline's servers: the certificate and key files, checked before any worker
starts, so that a wrong path or a key that does not match fails with a clear message."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.core.errors import InvalidInput


@dataclass(frozen=True)
class TlsFiles:
    """A PEM certificate (chain) and its private key; the key's password, if it has one."""

    cert: Path
    key: Path
    key_password: str | None = field(default=None, repr=False)

    def uvicorn_options(self) -> dict[str, Any]:
        """What uvicorn is configured with to serve HTTPS."""
        return {
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
            "ssl_keyfile_password": self.key_password,
        }


def tls_files(cert: Path | None, key: Path | None, key_password: str | None = None) -> TlsFiles | None:
    """The checked pair of `--tls-cert` and `--tls-key`; None when neither is given."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if key is None else ("--tls-key", "--tls-cert")
        raise InvalidInput(f"{given} needs {missing} too: HTTPS takes a certificate and its private key")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise InvalidInput(f"{flag} {path}: no such file")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise InvalidInput(f"{flag} {path} cannot be read: {exc.strerror}") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key, key_password)
    except ssl.SSLError as exc:
        hint = (
            "the key does not belong to the certificate"
            if "KEY_VALUES_MISMATCH" in str(exc)
            else "both must be PEM files, the key unencrypted or its password in LOOPLINE_TLS_KEY_PASSWORD"
        )
        raise InvalidInput(f"--tls-cert {cert} with --tls-key {key} cannot serve HTTPS: {hint}") from None
    return TlsFiles(cert.resolve(), key.resolve(), key_password)
