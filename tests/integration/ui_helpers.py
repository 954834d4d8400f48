"""Browsers of the web UI for tests: signed-in HTTP clients with the session cookie."""

from __future__ import annotations

import re

import httpx

from tests.integration.api_helpers import Team

_CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]*)">')


def signed_in(team: Team, user: str) -> httpx.Client:
    """A client holding `user`'s session cookie, as a browser has after signing in."""
    client = httpx.Client(base_url=team.url, timeout=60)
    answer = client.post("/api/v1/session", json={"token": team.tokens[user]})
    assert answer.status_code == 204, answer.text
    return client


def csrf_of(page: str) -> str:
    """The CSRF token a page carries, which its scripts send with every state change."""
    found = _CSRF.search(page)
    assert found is not None and found.group(1), "the page carries no CSRF token"
    return found.group(1)
