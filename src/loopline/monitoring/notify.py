"""Notifiers for alerts: a webhook POST (JSON, Slack-compatible), a JSON-lines log file,
stdout, and those of other packages (entry points of group `loopline.notifiers`). Each
sending gives an outcome that is stored with the alert; a failure never raises.

Webhook targets are checked before use: the host is resolved once, every address it
resolves to must be public (no loopback, link-local, cloud-metadata, private, multicast or
reserved address, IPv4-mapped forms included) unless the notifier allows the private
network, and the request goes to that checked address (no second lookup for DNS
rebinding to exploit). Redirects are not followed. URLs are shown without their path and
query, which often carry the webhook's secret.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import json
import socket
import ssl
import sys
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from loopline.core.errors import ContractViolation, InvalidInput
from loopline.core.plugins import PLUGIN_NAME, installed_plugins
from loopline.specs.monitor import NotifierSpec

# Named metadata endpoints; their addresses are link-local or private and refused anyway.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"})


def redact(url: str) -> str:
    """scheme://host[:port]/… : enough to tell targets apart, nothing secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address in its last 32 bits


def embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, Teredo client), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def check_address(address: str, allow_private: bool) -> None:
    """Refuse a webhook address that is not a public one (unless the private network is
    allowed) or that is no destination at all; IPv4 carried in IPv6 is judged as IPv4."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    ip = embedded_ipv4(ip) or ip
    if ip.is_unspecified or ip.is_multicast:
        raise InvalidInput(f"webhook address {ip} cannot be a destination")
    if not ip.is_global or ip == ipaddress.ip_address("100.100.100.200"):  # Alibaba's metadata
        if allow_private:
            return
        kind = (
            "loopback" if ip.is_loopback else "link-local (cloud metadata)" if ip.is_link_local
            else "private" if ip.is_private else "not public"
        )  # fmt: skip
        raise InvalidInput(
            f"webhook address {ip} is {kind}; set allow_private_network: true on the notifier to allow it"
        )


def resolve_webhook(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to) of a URL judged safe to POST to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"webhook {redact(url)}: use an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise InvalidInput(f"webhook {redact(url)}: credentials in the URL are not accepted")
    host = parts.hostname.rstrip(".").lower()
    if host in METADATA_HOSTS and not allow_private:
        raise InvalidInput(f"webhook host {host} is a cloud metadata service")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidInput(f"webhook host {host} does not resolve: {exc.strerror}") from None
    addresses = sorted({str(info[4][0]) for info in found})
    for address in addresses:  # every address: a host must not hide one bad answer among good ones
        check_address(address, allow_private)
    return parts.scheme, host, port, addresses[0]


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the certificate verified for the URL's host."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post_webhook(url: str, payload: dict[str, Any], allow_private: bool, timeout: float) -> dict[str, Any]:
    scheme, host, port, address = resolve_webhook(url, allow_private)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_type = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    connection = connection_type(host, address, port, timeout)
    try:
        body = json.dumps(payload, default=str).encode()
        connection.request("POST", target, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read(65_536)
    finally:
        connection.close()
    if 300 <= response.status < 400:
        raise InvalidInput(f"webhook answered {response.status} (a redirect, not followed)")
    if response.status >= 400:
        raise InvalidInput(f"webhook answered {response.status} {response.reason}")
    return {"status": response.status}


def slack_text(alert: dict[str, Any]) -> str:
    icon = {"critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
    return (
        f"{icon.get(alert['severity'], '')} [{alert['severity']}] monitor {alert['monitor']}: "
        f"{alert['message']}"
    ).strip()


class Notifier(Protocol):
    """Delivers alerts for the notifier specs of one `type`. Other packages add notifiers
    through the entry-point group `loopline.notifiers`; `check_notifier` runs the contract."""

    type: ClassVar[str]

    def check(self, spec: NotifierSpec) -> None:
        """Refuse (InvalidInput) a spec it cannot deliver to; run when a monitor is created."""

    def target(self, spec: NotifierSpec) -> str:
        """Where `spec` sends alerts, fit to record: never a secret ('' when nowhere in particular)."""

    def send(self, spec: NotifierSpec, alert: dict[str, Any]) -> dict[str, Any]:
        """Deliver `alert`; returns what else to record with it (a status...). Raises when
        delivery fails."""


class WebhookNotifier:
    """POST the alert as JSON (Slack-compatible `text`) to a checked public address."""

    type: ClassVar[str] = "webhook"

    def check(self, spec: NotifierSpec) -> None:
        if not spec.url:
            raise InvalidInput("a webhook notifier needs a url")

    def target(self, spec: NotifierSpec) -> str:
        return redact(spec.url or "")

    def send(self, spec: NotifierSpec, alert: dict[str, Any]) -> dict[str, Any]:
        assert spec.url is not None
        payload = {"text": slack_text(alert), "alert": alert}
        return post_webhook(spec.url, payload, spec.allow_private_network, spec.timeout_s)


class LogNotifier:
    """Append the alert as one JSON line to a file."""

    type: ClassVar[str] = "log"

    def check(self, spec: NotifierSpec) -> None:
        if not spec.path:
            raise InvalidInput("a log notifier needs a path")

    def target(self, spec: NotifierSpec) -> str:
        return str(Path(spec.path or "").expanduser())

    def send(self, spec: NotifierSpec, alert: dict[str, Any]) -> dict[str, Any]:
        path = Path(self.target(spec))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(alert, default=str) + "\n")
        return {}


class StdoutNotifier:
    """Print the alert on standard output."""

    type: ClassVar[str] = "stdout"

    def check(self, spec: NotifierSpec) -> None:
        return None

    def target(self, spec: NotifierSpec) -> str:
        return ""

    def send(self, spec: NotifierSpec, alert: dict[str, Any]) -> dict[str, Any]:
        print(f"ALERT {slack_text(alert)}", file=sys.stdout, flush=True)
        return {}


ENTRY_POINTS = "loopline.notifiers"
BUILT_IN: tuple[Notifier, ...] = (WebhookNotifier(), LogNotifier(), StdoutNotifier())


@functools.cache
def notifiers() -> dict[str, Notifier]:
    """Every notifier by type: the built-in ones, then those installed packages declare
    (entry points of group `loopline.notifiers`)."""
    found = {notifier.type: notifier for notifier in BUILT_IN}
    found.update(installed_plugins(ENTRY_POINTS, "type", set(found)))
    return found


def notifier_named(kind: str) -> Notifier:
    """The notifier of `kind`; InvalidInput names the known ones."""
    found = notifiers().get(kind)
    if found is None:
        raise InvalidInput(f"unknown notifier type {kind!r}; loopline knows {sorted(notifiers())}")
    return found


def check_notifier(notifier: Notifier, spec: NotifierSpec) -> dict[str, Any]:
    """Run the contract of a notifier on `spec`, in the way of scikit-learn's check_estimator:
    a valid `type` that `spec` has, a spec it accepts, and a test alert delivered with an
    outcome of JSON values that leaves `type`, `target`, `ok` and `error` to loopline. Returns that outcome;
    ContractViolation names the first broken rule."""
    kind = getattr(notifier, "type", None)
    if not isinstance(kind, str) or not PLUGIN_NAME.fullmatch(kind) or spec.type != kind:
        raise ContractViolation(f"{type(notifier).__name__}: type {kind!r} is not valid or not the spec's")
    notifier.check(spec)
    alert = {"monitor": "contract-check", "rule": "check", "severity": "info", "message": "a test alert",
             "value": 1.0, "status": "firing"}  # fmt: skip
    outcome = notifier.send(spec, alert)
    if not isinstance(outcome, dict):
        raise ContractViolation(f"notifier {kind}: send returned {type(outcome).__name__}, not a dict")
    if not isinstance(notifier.target(spec), str):
        raise ContractViolation(f"notifier {kind}: its target must be text")
    reserved = {"type", "target", "ok", "error"} & set(outcome)
    if reserved:
        raise ContractViolation(f"notifier {kind}: its outcome must leave {sorted(reserved)} to loopline")
    try:
        json.dumps(outcome)
    except (TypeError, ValueError) as exc:
        raise ContractViolation(f"notifier {kind}: its outcome is not JSON ({exc})") from None
    return outcome


def notify(specs: list[NotifierSpec], alert: dict[str, Any]) -> list[dict[str, Any]]:
    """Send `alert` through every notifier; one outcome per notifier, failures included: a
    failing notifier (a plug-in's included) never stops the others or the monitor."""
    outcomes = []
    for spec in specs:
        outcome: dict[str, Any] = {"type": spec.type}
        try:
            notifier = notifier_named(spec.type)
            if target := notifier.target(spec):
                outcome["target"] = target
            outcome.update(notifier.send(spec, alert))
            outcome["ok"] = True
        except Exception as exc:
            outcome.update(ok=False, error=str(exc)[:300])
        outcomes.append(outcome)
    return outcomes
