"""Signing in with OpenID Connect, end to end: a real provider (tests/oidc_provider.py) and a
real team server on 127.0.0.1, and an HTTP client that follows redirects and keeps cookies
as a browser does."""

from __future__ import annotations

from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest

from loopline.artifacts import BlobStore
from loopline.core.access import Role
from loopline.core.entities import Principal
from loopline.core.errors import PermissionDenied
from loopline.core.identities import IdentityPolicy, name_choices, parse_group_roles
from loopline.server.oidc import CALLBACK_PATH, PENDING_COOKIE
from loopline.server.sessions import CSRF_HEADER, SESSION_COOKIE, csrf_token, local_path
from loopline.store import MetadataStore
from loopline.wiring.backends import Backends, bootstrap_admin
from tests.conftest import Invoke, free_port
from tests.integration.api_helpers import running_api
from tests.integration.oidc_site import LOGIN, MAPPING, Site, oidc_site
from tests.oidc_provider import ProviderUser, TestProvider, rsa_key, running_provider

DANA = ProviderUser("sub-dana-1", "dana", "dana@example.com", ["data-science"])


@pytest.fixture(scope="module")
def provider() -> Iterator[TestProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def site(store: MetadataStore, blobs: BlobStore, provider: TestProvider) -> Iterator[Site]:
    with oidc_site(store, blobs, provider) as running:
        yield running


def _csrf(browser: httpx.Client) -> dict[str, str]:
    return {CSRF_HEADER: csrf_token(browser.cookies[SESSION_COOKIE])}


def test_first_sign_in_provisions_the_user_with_the_roles_of_their_groups(site: Site) -> None:
    browser = site.sign_in(DANA)
    assert site.store.access.user("dana").is_admin is False
    assert site.store.access.roles_of("dana") == {"default": Role.EDITOR, "churn": Role.VIEWER}
    identity = site.store.access.identity(site.provider.issuer, DANA.sub)
    assert identity is not None and identity.user == "dana" and identity.groups == ("data-science",)
    assert identity.email == "dana@example.com"
    # The session works for what an editor may do, and not for what only an owner may.
    assert browser.get("/api/v1/whoami").json()["name"] == "dana"
    made = browser.post("/api/v1/experiments", json={"name": "dana-first"}, headers=_csrf(browser))
    assert made.status_code in (200, 201), made.text
    promoted = browser.put(
        "/api/v1/projects/default/members/dana", json={"role": "owner"}, headers=_csrf(browser)
    )
    assert promoted.status_code == 403, promoted.text
    # Provisioning and the roles it gave are on the audit trail, done by the user signing in.
    created = site.audit("user.create")
    assert (created[0]["actor"], created[0]["target"]) == ("dana", "user:dana")
    roles = {(e["target"], e["after"], e["actor"]) for e in site.audit("member.role")}
    assert roles >= {("project:default/dana", "editor", "dana"), ("project:churn/dana", "viewer", "dana")}


def test_each_sign_in_moves_the_roles_with_the_groups(site: Site) -> None:
    site.sign_in(DANA)
    analyst = ProviderUser(DANA.sub, "dana", "dana@example.com", ["analysts", "unrelated"])
    browser = site.sign_in(analyst)
    assert site.store.access.roles_of("dana") == {"default": Role.VIEWER}  # lowered; churn removed
    made = browser.post("/api/v1/experiments", json={"name": "not-for-viewers"}, headers=_csrf(browser))
    assert made.status_code == 403, made.text
    changes = [(e["target"], e["before"], e["after"]) for e in site.audit("member.")]
    assert ("project:default/dana", "editor", "viewer") in changes
    assert ("project:churn/dana", "viewer", None) in changes
    # An administrators' group makes an administrator, and leaving it unmakes one.
    site.sign_in(ProviderUser(DANA.sub, "dana", "dana@example.com", ["ml-admins", "data-science"]))
    assert site.store.access.user("dana").is_admin is True
    site.sign_in(DANA)
    assert site.store.access.user("dana").is_admin is False
    flags = [(e["before"], e["after"]) for e in site.audit("user.admin")]
    assert flags == [(True, False), (False, True)]  # newest first
    # A role set by hand on a project the mapping does not name is left alone.
    site.store.access.set_role("side-project", "dana", Role.MAINTAINER)
    site.sign_in(DANA)
    assert site.store.access.role("side-project", "dana") == Role.MAINTAINER


def test_a_user_none_of_whose_groups_is_mapped_is_refused(site: Site) -> None:
    stranger = ProviderUser("sub-stranger", "stranger", "s@example.com", ["marketing"])
    site.provider.user = stranger
    with site.browser() as browser:
        answer = browser.get(LOGIN)
    assert answer.status_code == 403
    assert "none of your groups" in unescape(answer.text) and "marketing" in unescape(answer.text)
    assert "stranger" not in {u.name for u in site.store.access.users()}
    # Someone who leaves every mapped group loses the mapped roles and cannot sign in.
    site.sign_in(DANA)
    site.provider.user = ProviderUser(DANA.sub, "dana", "dana@example.com", [])
    with site.browser() as browser:
        assert browser.get(LOGIN).status_code == 403
    assert site.store.access.roles_of("dana") == {}


def test_groups_only_in_user_info_are_read_from_there(site: Site) -> None:
    site.provider.groups_in_id_token = False  # as many providers do by default
    site.sign_in(DANA)
    assert site.store.access.roles_of("dana") == {"default": Role.EDITOR, "churn": Role.VIEWER}


def test_an_existing_local_user_is_not_taken_over(site: Site) -> None:
    admin = {"Authorization": f"Bearer {site.admin_token}"}
    made = httpx.post(f"{site.url}/api/v1/users", json={"name": "Dana"}, headers=admin)
    assert made.status_code == 201, made.text
    site.store.access.set_role("default", "Dana", Role.OWNER)
    browser = site.sign_in(DANA)
    expected = name_choices("dana", site.provider.issuer, DANA.sub)[1]
    assert browser.get("/api/v1/whoami").json()["name"] == expected
    assert site.store.access.role("default", "Dana") == Role.OWNER  # untouched
    assert site.store.access.role("default", expected) == Role.EDITOR
    identity = site.store.access.identity(site.provider.issuer, DANA.sub)
    assert identity is not None and identity.user == expected
    # The same person comes back to the same user.
    again = site.sign_in(DANA)
    assert again.get("/api/v1/whoami").json()["name"] == expected


def test_tokens_keep_working_for_machines(site: Site) -> None:
    browser = site.sign_in(DANA)
    made = browser.post("/api/v1/users/dana/tokens", json={"name": "ci"}, headers=_csrf(browser))
    assert made.status_code == 201, made.text
    machine = {"Authorization": f"Bearer {made.json()['token']}"}
    assert httpx.get(f"{site.url}/api/v1/whoami", headers=machine).json()["name"] == "dana"
    admin = {"Authorization": f"Bearer {site.admin_token}"}
    assert httpx.get(f"{site.url}/api/v1/whoami", headers=admin).json()["name"] == "admin"


def _to_callback(site: Site, user: ProviderUser) -> tuple[httpx.Client, str]:
    """A browser that went to the provider and holds the URL it was sent back to."""
    site.provider.user = user
    browser = httpx.Client(base_url=site.url, follow_redirects=False, timeout=30)
    to_provider = browser.get(LOGIN)
    assert to_provider.status_code == 303
    back = httpx.get(to_provider.headers["location"], follow_redirects=False)
    assert back.status_code == 302, back.text
    return browser, back.headers["location"]


def test_an_answer_for_another_sign_in_is_refused(site: Site) -> None:
    browser, callback = _to_callback(site, DANA)
    query = parse_qs(urlparse(callback).query)
    forged = f"{CALLBACK_PATH}?{urlencode({'code': query['code'][0], 'state': 'not-the-state'})}"
    answer = browser.get(forged)
    assert answer.status_code == 400 and "not for this browser's sign-in" in unescape(answer.text)
    # Nor without the browser's pending sign-in: an attacker's own callback URL, sent to a victim.
    victim = httpx.Client(base_url=site.url, timeout=30)
    answer = victim.get(callback)
    assert answer.status_code == 400 and "no sign-in is in progress" in unescape(answer.text)
    assert "dana" not in {u.name for u in site.store.access.users()}


def test_a_replayed_code_is_refused(site: Site) -> None:
    browser, callback = _to_callback(site, DANA)
    pending = browser.cookies[PENDING_COOKIE]
    assert browser.get(callback).status_code == 200  # signed in
    replay = httpx.Client(base_url=site.url, timeout=30)
    replay.cookies.set(PENDING_COOKIE, pending, path="/api/v1/session/oidc")
    answer = replay.get(callback)
    assert answer.status_code == 401 and "did not accept this sign-in" in unescape(answer.text)
    assert SESSION_COOKIE not in replay.cookies


@pytest.mark.parametrize("tamper", ["forged key", "other audience"])
def test_an_id_token_not_for_this_server_is_refused(site: Site, tamper: str) -> None:
    if tamper == "forged key":
        site.provider.forge_with = rsa_key()  # same key id, not the published key
    else:
        site.provider.audience = "some-other-client"
    site.provider.user = DANA
    with site.browser() as browser:
        answer = browser.get(LOGIN)
        assert answer.status_code == 401
        assert "ID token from Test IdP is not valid" in unescape(answer.text)
        assert SESSION_COOKIE not in browser.cookies
    assert "dana" not in {u.name for u in site.store.access.users()}


def test_the_provider_refusing_is_shown(site: Site) -> None:
    site.provider.user = None  # nobody signs in at the provider: access_denied
    with site.browser() as browser:
        answer = browser.get(LOGIN)
    assert answer.status_code == 403
    assert "Test IdP did not sign you in (access_denied" in unescape(answer.text)


def test_an_unreachable_provider_is_a_bad_gateway(
    store: MetadataStore, blobs: BlobStore, provider: TestProvider
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    with oidc_site(store, blobs, provider, issuer=nobody) as site:
        answer = httpx.get(f"{site.url}{LOGIN}", headers={"accept": "application/json"})
    assert answer.status_code == 502
    assert "cannot be reached" in answer.json()["error"]["message"]


def test_sign_in_by_identity_is_the_servers_alone(store: MetadataStore, blobs: BlobStore) -> None:
    bootstrap_admin(Backends(store, blobs))
    store.access.add_user("eve", False, 0)
    policy = IdentityPolicy(parse_group_roles(MAPPING))
    access = Backends(store, blobs).services(Principal("eve")).access
    with pytest.raises(PermissionDenied, match="only an administrator"):
        access.sign_in_with_identity("https://idp.example", "eve-2", {"groups": ["ml-admins"]}, policy)
    assert store.access.identity("https://idp.example", "eve-2") is None


def test_the_login_page_offers_the_provider(site: Site) -> None:
    page = httpx.get(f"{site.url}/login", params={"next": "/models?x=<b>"})
    assert page.status_code == 200
    assert 'href="/api/v1/session/oidc/login?next=/models%3Fx%3D%3Cb%3E"' in page.text
    assert "Sign in with Test IdP" in page.text


def test_the_server_checks_its_sign_in_settings_before_serving(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_OIDC_ISSUER", "https://sso.example.com/realms/ml")
    monkeypatch.setenv("LOOPLINE_OIDC_CLIENT_ID", "loopline")
    monkeypatch.setenv("LOOPLINE_OIDC_GROUP_ROLES", MAPPING)
    monkeypatch.setenv("LOOPLINE_SERVER_PUBLIC_URL", "https://loopline.example.com")
    code, _, err = cli("server", "--check")
    assert code == 0, err
    assert "redirect URI https://loopline.example.com/api/v1/session/oidc/callback" in err
    monkeypatch.setenv("LOOPLINE_OIDC_GROUP_ROLES", "data-science=default:boss")
    code, _, err = cli("server", "--check")
    assert code == 1
    assert "LOOPLINE_OIDC_GROUP_ROLES: group mapping entry 1" in err and "Traceback" not in err


def test_a_server_without_a_provider_says_so(store: MetadataStore, blobs: BlobStore) -> None:
    with running_api(Backends(store, blobs)) as url:
        answer = httpx.get(f"{url}{LOGIN}")
        assert answer.status_code == 404 and "no OpenID Connect sign-in" in answer.json()["error"]["message"]
        page = httpx.get(f"{url}/login")
        assert page.status_code == 200 and "Sign in with" not in page.text


@pytest.mark.parametrize(
    "elsewhere", ["//evil.example/x", "/\\evil.example", "/\t/evil.example", "https://e.x/"]
)
def test_after_signing_in_a_browser_stays_on_this_server(elsewhere: str) -> None:
    assert local_path(elsewhere) == "/"
    assert local_path("/runs?experiment=1") == "/runs?experiment=1"
