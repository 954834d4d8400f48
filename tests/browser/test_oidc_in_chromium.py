"""Signing in with an OpenID Connect provider in Chromium: the button on the sign-in page,
the provider (another site, as in production), and back to the page asked for, signed in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from loopline.artifacts import BlobStore
from loopline.store import open_metadata_store
from tests.browser.conftest import Watched
from tests.integration.oidc_site import Site, oidc_site
from tests.oidc_provider import ProviderUser, running_provider

pytestmark = pytest.mark.browser


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'loopline.db'}")
    with (
        running_provider("localhost") as provider,
        oidc_site(store, BlobStore(str(tmp_path / "a")), provider) as running,
    ):
        yield running
    store.close()


def test_the_sign_in_button_signs_in_through_the_provider(site: Site, watched: Watched) -> None:
    site.provider.user = ProviderUser("sub-olga", "olga", "olga@example.com", ["data-science"])
    site.provider.ask_first = True
    page = watched.page
    page.goto(f"{site.url}/experiments")
    page.wait_for_url("**/login?next=**")
    button = page.get_by_role("link", name="Sign in with Test IdP")
    expect(button).to_be_visible()
    button.click()
    page.get_by_role("button", name="Continue").click()  # at the provider
    page.wait_for_url(f"{site.url}/experiments")
    expect(page.locator(".who")).to_contain_text("olga")
    expect(page.locator("h1")).to_be_visible()
    # The session holds on the next page too, and signing out ends it.
    page.goto(f"{site.url}/models")
    expect(page.locator(".who")).to_contain_text("olga")
    page.click('[data-action="sign-out"]')
    page.wait_for_url("**/login")
    assert watched.errors == [] and watched.dialogs == []
