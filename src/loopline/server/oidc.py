"""What the team server needs to sign browsers in with an OpenID Connect provider: its
configuration, and the sign-in in progress that the browser carries between the redirect to
the provider and the way back.

That pending sign-in (state, nonce, PKCE verifier, where to go after) travels in a cookie
that is HttpOnly, limited to the sign-in paths, expires in ten minutes, is used once, and is
signed with a key of this server: a page of another site can neither read it nor plant one.
It is SameSite=Lax, not Strict, because the way back is a navigation from the provider's site.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlparse

from loopline.core.errors import InvalidInput
from loopline.core.identities import IdentityPolicy, parse_group_roles
from loopline.wiring.settings import Settings

PENDING_COOKIE = "loopline_oidc"
SIGN_IN_PATH = "/api/v1/session/oidc"
CALLBACK_PATH = f"{SIGN_IN_PATH}/callback"
PENDING_SECONDS = 600
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class OidcConfig:
    """A provider to sign in with, as this server is registered there."""

    issuer: str
    client_id: str
    redirect_uri: str
    policy: IdentityPolicy
    display_name: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: str = "openid email profile"
    timeout_s: float = 10.0
    # Signs pending sign-ins; made once per server, so every worker process shares it.
    login_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)


def oidc_config(settings: Settings, public_url: str) -> OidcConfig | None:
    """The provider the settings name (None when `oidc_issuer` is unset), checked."""
    issuer = (settings.oidc_issuer or "").strip()
    if not issuer:
        return None
    parsed = urlparse(issuer)
    if parsed.scheme != "https" and not (parsed.scheme == "http" and parsed.hostname in _LOOPBACK):
        raise InvalidInput(
            f"LOOPLINE_OIDC_ISSUER {issuer!r} must be an https:// URL (http:// only on this machine)"
        )
    if not settings.oidc_client_id:
        raise InvalidInput("LOOPLINE_OIDC_ISSUER is set: set LOOPLINE_OIDC_CLIENT_ID too (the client id)")
    if "openid" not in settings.oidc_scopes.split():
        raise InvalidInput(f"LOOPLINE_OIDC_SCOPES {settings.oidc_scopes!r} must include openid")
    base = urlparse(public_url)
    if base.scheme not in ("http", "https") or not base.hostname or base.hostname in ("0.0.0.0", "::"):
        raise InvalidInput(
            f"the server's public URL {public_url!r} is not one a browser can reach: set "
            "LOOPLINE_SERVER_PUBLIC_URL (e.g. https://loopline.example.com)"
        )
    try:
        group_roles = parse_group_roles(settings.oidc_group_roles)
    except InvalidInput as exc:
        raise InvalidInput(f"LOOPLINE_OIDC_GROUP_ROLES: {exc}") from None
    policy = IdentityPolicy(
        group_roles,
        settings.oidc_username_claim,
        settings.oidc_groups_claim,
        settings.oidc_allow_unmapped,
    )
    secret = settings.oidc_client_secret
    return OidcConfig(
        issuer=issuer,
        client_id=settings.oidc_client_id,
        redirect_uri=public_url.rstrip("/") + CALLBACK_PATH,
        policy=policy,
        display_name=settings.oidc_display_name or parsed.netloc,
        client_secret=None if secret is None else secret.get_secret_value() or None,
        scopes=settings.oidc_scopes,
    )


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in sent to the provider and not yet back."""

    state: str
    nonce: str
    verifier: str  # PKCE: the token request proves it started this sign-in
    next: str
    expires: int

    @classmethod
    def start(cls, next_path: str) -> PendingSignIn:
        """A new sign-in, with fresh random values, that returns to `next_path`."""
        return cls(
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(48),
            next_path,
            int(time.time()) + PENDING_SECONDS,
        )

    def seal(self, key: bytes) -> str:
        """This sign-in as a cookie value: JSON in base64, then its HMAC."""
        body = base64.urlsafe_b64encode(json.dumps(asdict(self)).encode()).decode()
        return f"{body}.{_mac(key, body)}"

    @classmethod
    def unseal(cls, sealed: str | None, key: bytes) -> PendingSignIn:
        """The sign-in a cookie holds; refused when missing, altered or expired."""
        again = "start again from the sign-in page"
        if not sealed:
            raise InvalidInput(f"no sign-in is in progress in this browser (or cookies are blocked); {again}")
        body, _, mac = sealed.rpartition(".")
        if not hmac.compare_digest(mac, _mac(key, body)):
            raise InvalidInput(f"this browser's sign-in was not started by this server; {again}")
        try:
            pending = cls(**json.loads(base64.urlsafe_b64decode(body)))
        except (binascii.Error, ValueError, TypeError):
            raise InvalidInput(f"this browser's sign-in cannot be read; {again}") from None
        if pending.expires < time.time():
            raise InvalidInput(f"the sign-in took longer than {PENDING_SECONDS // 60} minutes; {again}")
        return pending


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
