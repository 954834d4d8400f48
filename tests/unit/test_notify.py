"""Webhook targets are checked before any connection: loopback, link-local (cloud
metadata), private and unusable addresses are refused unless allowed, in every spelling;
redirects are not followed; secrets in URLs never reach an outcome."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from loopline.core.errors import ContractViolation, InvalidInput
from loopline.monitoring.notify import (
    check_address,
    check_notifier,
    notifier_named,
    notifiers,
    notify,
    redact,
    resolve_webhook,
)
from loopline.specs.monitor import NotifierSpec


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://2130706433/hook", "loopback"),  # 127.0.0.1 as one number
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://10.0.0.8/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://0.0.0.0/hook", "cannot be a destination"),
        ("http://224.0.0.1/hook", "cannot be a destination"),
        ("ftp://example.com/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://user:pw@example.com/hook", "credentials"),
        ("http://100.64.0.1/hook", "not public"),  # shared address space (carrier NAT)
        ("http://[2002:7f00:1::1]/hook", "loopback"),  # 6to4 around 127.0.0.1
        ("http://[64:ff9b::7f00:1]/hook", "loopback"),  # NAT64 around 127.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/hook", "link-local"),  # NAT64 around the metadata service
        ("http://[2002:a9fe:a9fe::1]/hook", "link-local"),  # 6to4 around it
    ],
)
def test_unsafe_targets_are_refused_before_connecting(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_webhook(url, allow_private=False)


def test_public_addresses_pass_and_private_ones_only_when_allowed() -> None:
    assert resolve_webhook("https://93.184.216.34/services/T0/B0/x", False) == (
        "https",
        "93.184.216.34",
        443,
        "93.184.216.34",
    )
    assert resolve_webhook("http://127.0.0.1:9/x", True)[3] == "127.0.0.1"
    check_address("10.1.2.3", allow_private=True)
    with pytest.raises(InvalidInput):
        check_address("0.0.0.0", allow_private=True)  # never a destination, allowed or not


class Redirecting(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        Redirecting.hits.append(self.path)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    Redirecting.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook/s3cr3t?token=abc"
    server.shutdown()


def test_redirects_are_not_followed_and_secrets_stay_out_of_outcomes(redirecting: str) -> None:
    spec = NotifierSpec(type="webhook", url=redirecting, allow_private_network=True)
    [outcome] = notify([spec], {"severity": "warning", "monitor": "m", "message": "drifted"})
    assert not outcome["ok"] and "redirect, not followed" in outcome["error"]
    assert Redirecting.hits == ["/hook/s3cr3t?token=abc"]  # one request, to the hook only
    assert "s3cr3t" not in str(outcome) and "abc" not in str(outcome)
    assert redact(redirecting).endswith("/…") and "s3cr3t" not in redact(redirecting)


def test_a_refused_target_is_an_outcome_not_an_exception() -> None:
    spec = NotifierSpec(type="webhook", url="http://169.254.169.254/x")
    [outcome] = notify([spec], {"severity": "critical", "monitor": "m", "message": "x"})
    assert outcome == {
        "type": "webhook",
        "target": "http://169.254.169.254/…",
        "ok": False,
        "error": outcome["error"],
    }
    assert "link-local" in outcome["error"]


class Accepting(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_built_in_notifiers_keep_the_contract(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Accepting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook/s3cr3t"
        webhook = NotifierSpec(type="webhook", url=url, allow_private_network=True)
        assert check_notifier(notifier_named("webhook"), webhook) == {"status": 204}
    finally:
        server.shutdown()
    log = NotifierSpec(type="log", path=str(tmp_path / "alerts.jsonl"))
    check_notifier(notifier_named("log"), log)
    assert json.loads((tmp_path / "alerts.jsonl").read_text())["monitor"] == "contract-check"
    check_notifier(notifier_named("stdout"), NotifierSpec(type="stdout"))


class _Loud:
    """Breaks the contract: its outcome claims `ok` for itself."""

    type: ClassVar[str] = "loud"

    def check(self, spec: NotifierSpec) -> None:
        return None

    def target(self, spec: NotifierSpec) -> str:
        return "everyone"

    def send(self, spec: NotifierSpec, alert: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}


def test_a_notifier_that_claims_loopline_s_fields_breaks_the_contract() -> None:
    with pytest.raises(ContractViolation, match="leave"):
        check_notifier(_Loud(), NotifierSpec(type="loud"))


PLUGIN = '''
class Pager:
    """Pages someone: here, appends to a list the test reads."""
    type = "pager"
    sent = []
    def check(self, spec):
        from loopline.core.errors import InvalidInput
        if "team" not in spec.options:
            raise InvalidInput("a pager notifier needs options.team")
    def target(self, spec):
        return "team " + spec.options["team"]
    def send(self, spec, alert):
        if alert["severity"] == "boom":
            raise RuntimeError("the pager service is down")
        Pager.sent.append(alert["message"])
        return {"paged": 1}
'''


def test_notifiers_of_installed_packages_join_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pager_notifier.py").write_text(PLUGIN)
    info = tmp_path / "pager_notifier-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pager-notifier\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[loopline.notifiers]\npager = pager_notifier:Pager\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    notifiers.cache_clear()
    try:
        import pager_notifier  # type: ignore[import-not-found]

        spec = NotifierSpec(type="pager", options={"team": "ml"})
        assert check_notifier(notifier_named("pager"), spec) == {"paged": 1}
        with pytest.raises(InvalidInput, match=r"options\.team"):
            notifier_named("pager").check(NotifierSpec(type="pager"))
        outcomes = notify([spec, spec], {"severity": "boom", "monitor": "m", "message": "x"})
        assert (
            outcomes
            == [  # a failing plug-in is an outcome, and the next notifier still runs
                {"type": "pager", "target": "team ml", "ok": False, "error": "the pager service is down"}
            ]
            * 2
        )
        assert pager_notifier.Pager.sent == ["a test alert"]
        monkeypatch.undo()  # the package is gone again: its type is unknown
        notifiers.cache_clear()
        with pytest.raises(InvalidInput, match="unknown notifier type 'pager'"):
            notifier_named("pager")
    finally:
        notifiers.cache_clear()
