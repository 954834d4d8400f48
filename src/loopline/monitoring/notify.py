"""Notifiers for alerts: a webhook POST (JSON, Slack-compatible), a JSON-lines log file,
stdout. Each returns an outcome that is stored with the alert; none raises.

Webhook targets are checked before use: the host is resolved once, every address it
resolves to must be public (no loopback, link-local, cloud-metadata, private, multicast or
reserved address, IPv4-mapped forms included) unless the notifier allows the private
network, and the request goes to that checked address (no second lookup for DNS
rebinding to exploit). Redirects are not followed. URLs are shown without their path and
query, which often carry the webhook's secret.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loopline.core.errors import InvalidInput
from loopline.monitoring.spec import NotifierSpec

# Named metadata endpoints; their addresses are link-local or private and refused anyway.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"})


def redact(url: str) -> str:
    """scheme://host[:port]/… : enough to tell targets apart, nothing secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def check_address(address: str, allow_private: bool) -> None:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        raise InvalidInput(f"webhook address {ip} cannot be a destination")
    if ip.is_loopback or ip.is_link_local or ip.is_private or ip == ipaddress.ip_address("100.100.100.200"):
        if allow_private:
            return
        kind = (
            "loopback" if ip.is_loopback else "link-local (cloud metadata)" if ip.is_link_local else "private"
        )
        raise InvalidInput(
            f"webhook address {ip} is {kind}; set allow_private_network: true on the notifier to allow it"
        )
    if ip.is_reserved:
        raise InvalidInput(f"webhook address {ip} cannot be a destination")


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


def notify(notifiers: list[NotifierSpec], alert: dict[str, Any]) -> list[dict[str, Any]]:
    """Send `alert` through every notifier; one outcome per notifier, failures included."""
    outcomes = []
    for notifier in notifiers:
        outcome: dict[str, Any] = {"type": notifier.type}
        try:
            if notifier.type == "webhook":
                assert notifier.url is not None
                outcome["target"] = redact(notifier.url)
                payload = {"text": slack_text(alert), "alert": alert}
                outcome.update(
                    post_webhook(notifier.url, payload, notifier.allow_private_network, notifier.timeout_s)
                )
            elif notifier.type == "log":
                assert notifier.path is not None
                path = Path(notifier.path).expanduser()
                outcome["target"] = str(path)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(alert, default=str) + "\n")
            else:
                print(f"ALERT {slack_text(alert)}", file=sys.stdout, flush=True)
            outcome["ok"] = True
        except (InvalidInput, OSError, http.client.HTTPException) as exc:
            outcome.update(ok=False, error=str(exc)[:300])
        outcomes.append(outcome)
    return outcomes
