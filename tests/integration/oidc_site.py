"""A team server that signs browsers in with the test provider (tests/oidc_provider.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx

from loopline.artifacts import BlobStore
from loopline.core.identities import IdentityPolicy, parse_group_roles
from loopline.server.oidc import CALLBACK_PATH, OidcConfig
from loopline.server.options import ServerOptions
from loopline.store import MetadataStore
from loopline.ui.app import create_server_app
from loopline.wiring.backends import Backends, bootstrap_admin
from tests.conftest import free_port
from tests.integration.serving_helpers import uvicorn_in_thread
from tests.oidc_provider import ProviderUser, TestProvider

MAPPING = "ml-admins=admin,data-science=default:editor,analysts=default:viewer,data-science=churn:viewer"
CLIENT_ID = "loopline-test"
CLIENT_SECRET = "s3cret-of-the-test-client"
LOGIN = "/api/v1/session/oidc/login"


@dataclass
class Site:
    """A team server that signs in with the test provider."""

    url: str
    store: MetadataStore
    admin_token: str
    provider: TestProvider

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=True, timeout=30)

    def sign_in(self, user: ProviderUser | None, browser: httpx.Client | None = None) -> httpx.Client:
        """A browser signed in as `user` (whom the provider signs in); fails unless it worked."""
        self.provider.user = user
        browser = browser or self.browser()
        landed = browser.get(LOGIN, params={"next": "/experiments"})
        assert landed.status_code == 200, landed.text
        assert urlparse(str(landed.url)).path == CALLBACK_PATH  # a page that moves on, as browsers do
        assert '<meta http-equiv="refresh" content="0;url=/experiments">' in landed.text
        onward = browser.get("/experiments")
        assert onward.status_code == 200 and urlparse(str(onward.url)).path == "/experiments"
        return browser

    def audit(self, action: str) -> list[dict[str, object]]:
        answer = httpx.get(
            f"{self.url}/api/v1/audit", params={"action": action},
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        items: list[dict[str, object]] = answer.json()["items"]
        return items


def oidc_options(provider: TestProvider, port: int, issuer: str | None = None) -> ServerOptions:
    config = OidcConfig(
        issuer=issuer or provider.issuer,
        client_id=CLIENT_ID,
        redirect_uri=f"http://127.0.0.1:{port}{CALLBACK_PATH}",
        policy=IdentityPolicy(parse_group_roles(MAPPING), groups_claim="groups"),
        display_name="Test IdP",
        client_secret=CLIENT_SECRET,
        scopes="openid email profile groups",
    )
    return ServerOptions(oidc=config)


@contextlib.contextmanager
def oidc_site(
    store: MetadataStore, blobs: BlobStore, provider: TestProvider, issuer: str | None = None
) -> Iterator[Site]:
    backends = Backends(store, blobs)
    token = bootstrap_admin(backends)
    assert token is not None
    port = free_port()
    provider.register(CLIENT_ID, CLIENT_SECRET, f"http://127.0.0.1:{port}{CALLBACK_PATH}")
    app = create_server_app(backends, oidc_options(provider, port, issuer))
    with uvicorn_in_thread(app, port, lifespan="off"):
        yield Site(f"http://127.0.0.1:{port}", store, token, provider)
    provider.reset()
