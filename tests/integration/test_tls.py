"""HTTPS: `loopline server` and `loopline serve` with a certificate a private CA signed,
clients that trust that CA through LOOPLINE_TLS_CA, and refusals of plain HTTP and of
unverified certificates."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from loopline.artifacts import BlobStore
from loopline.cli.main import run
from loopline.client.services import RemoteServices
from loopline.core.errors import StoreError
from loopline.store import open_metadata_store
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import Invoke, free_port
from tests.integration.serving_helpers import cancer_data, register_cancer_models

TOKEN_PREFIX = "ll_"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA, and a certificate for 127.0.0.1 it signed, with its key: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("loopline test CA"))
        .issuer_name(_name("loopline test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        _pem(folder, "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        _pem(folder, "server.pem", cert.public_bytes(serialization.Encoding.PEM)),
        _pem(folder, "server-key.pem", private),
    )


@pytest.fixture
def certificates(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path)


@contextlib.contextmanager
def loopline_process(args: list[str], env: dict[str, str], log: Path, ready: str, ca: Path) -> Iterator[str]:
    """`loopline ARGS --port P` in its own process until `ready` answers over HTTPS verified
    against `ca`; yields its https:// URL and stops it with SIGTERM."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "loopline", *args, "--port", str(port)],
            env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    trusted = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"loopline exited with {process.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + ready, verify=trusted, timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def test_the_team_server_over_https_with_a_private_ca(
    certificates: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    ca, cert, key = certificates
    log = tmp_path / "server.log"
    args = ["server", "--tls-cert", str(cert), "--tls-key", str(key)]
    with loopline_process(args, {"LOOPLINE_HOME": str(tmp_path / "home")}, log, "/health", ca) as url:
        printed = log.read_text()
        assert f"LOOPLINE_URI={url}" in printed and f"the loopline server is at {url}/" in printed
        token = next(word for word in printed.split() if word.startswith(TOKEN_PREFIX))

        assert RemoteServices.connect(url, token, ca_bundle=ca).principal.name == "admin"
        monkeypatch.setenv("LOOPLINE_TOKEN", token)
        monkeypatch.setenv("LOOPLINE_TLS_CA", str(ca))
        assert run(["--uri", url, "experiments", "create", "over-tls"]) == 0
        assert run(["--uri", url, "experiments", "list"]) == 0
        assert "over-tls" in capsys.readouterr().out

        monkeypatch.delenv("LOOPLINE_TLS_CA")  # the CA is not trusted: the certificate is refused
        assert run(["--uri", url, "experiments", "list"]) == 1
        err = capsys.readouterr().err
        assert "CERTIFICATE_VERIFY_FAILED" in err and "LOOPLINE_TLS_CA" in err
        with pytest.raises(StoreError, match="CERTIFICATE_VERIFY_FAILED"):
            _ = RemoteServices.connect(url, token).principal
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the HTTPS port gets no answer
            httpx.get(url.replace("https://", "http://") + "/health", timeout=5)


def test_the_prediction_server_over_https(
    certificates: tuple[Path, Path, Path], store_url: str, tmp_path: Path
) -> None:
    ca, cert, key = certificates
    artifacts = tmp_path / "artifacts"
    backends = Backends(open_metadata_store(store_url), BlobStore(str(artifacts)))
    services = backends.services(local_owner())
    tracker = Tracker(services.tracking, registry=services.registry)
    register_cancer_models(tracker)
    tracker.close()
    backends.close()
    env = {"LOOPLINE_STORE_URI": store_url, "LOOPLINE_ARTIFACTS_URI": str(artifacts)}
    args = ["serve", "models:/cancer/1", "--tls-cert", str(cert), "--tls-key", str(key)]
    with loopline_process(args, env, tmp_path / "serve.log", "/ready", ca) as url:
        assert f"at {url} " in (tmp_path / "serve.log").read_text()
        features, _ = cancer_data()
        trusted = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(base_url=url, verify=trusted, timeout=30) as client:
            answer = client.post(
                "/v1/deployments/cancer/predict", json={"records": [features.iloc[0].to_dict()]}
            )
            assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url + "/ready", timeout=5)  # verified against the usual CAs: refused
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/ready", timeout=5)


def test_tls_flags_are_checked_before_serving(
    cli: Invoke, certificates: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ca, cert, key = certificates
    (tmp_path / "other").mkdir()
    _, _, other_key = make_certificates(tmp_path / "other")
    for command in ("server", "serve"):
        code, _, err = cli(command, "--tls-cert", str(cert))
        assert code == 1 and "--tls-cert needs --tls-key too" in err
        code, _, err = cli(command, "--tls-cert", str(tmp_path / "nowhere.pem"), "--tls-key", str(key))
        assert code == 1 and "nowhere.pem: no such file" in err
        code, _, err = cli(command, "--tls-cert", str(cert), "--tls-key", str(other_key))
        assert code == 1 and "the key does not belong to the certificate" in err
        code, _, err = cli(command, "--tls-cert", str(ca), "--tls-key", str(cert))
        assert code == 1 and "cannot serve HTTPS" in err
