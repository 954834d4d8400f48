"""Talking to the OpenID Connect provider: its discovery document and keys, the redirect to
it, the exchange of the code it returns, and the verification of the ID token it issues.

The ID token is accepted only when signed (asymmetrically) by a key the provider publishes,
issued by the configured issuer to this client, unexpired, and carrying the nonce of the
browser's own sign-in. Authlib checks the claims; joserfc, its JOSE library, the signature."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from loopline.core.errors import ProviderUnavailable, Unauthenticated
from loopline.server.oidc import OidcConfig, PendingSignIn

METADATA_SECONDS = 3600.0  # discovery documents change rarely; keys are fetched again on a new kid
KEYS_REFRESH_SECONDS = 10.0  # at most this often for an unknown kid: a forged one makes no flood
LEEWAY_SECONDS = 60  # clock skew allowed between the provider and this server
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class Provider:
    """One provider, its discovery document and keys cached."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    async def authorization_url(self, pending: PendingSignIn) -> str:
        """Where to send the browser: the provider's sign-in for this sign-in."""
        endpoint = (await self._discovered())["authorization_endpoint"]
        url: str = prepare_grant_uri(
            endpoint,
            self.config.client_id,
            "code",
            redirect_uri=self.config.redirect_uri,
            scope=self.config.scopes,
            state=pending.state,
            nonce=pending.nonce,
            code_challenge=create_s256_code_challenge(pending.verifier),
            code_challenge_method="S256",
        )
        return url

    async def exchange(self, code: str, pending: PendingSignIn) -> dict[str, Any]:
        """The verified claims of the ID token the provider gives for `code`."""
        metadata = await self._discovered()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": pending.verifier,
            "client_id": self.config.client_id,
        }
        auth: tuple[str, str] | None = None
        secret = self.config.client_secret
        if secret is not None:
            methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            if "client_secret_basic" in methods:  # RFC 6749 2.3.1: each part form-encoded first
                auth = (quote(self.config.client_id, safe=""), quote(secret, safe=""))
            else:
                form["client_secret"] = secret
        answer = await self._request("POST", metadata["token_endpoint"], data=form, auth=auth)
        body = _json(answer)
        if answer.status_code >= 500:
            raise ProviderUnavailable(
                f"{self._name} answered the code exchange with HTTP {answer.status_code}; try again later"
            )
        if answer.status_code != 200 or not isinstance(body.get("id_token"), str):
            error = f"{body.get('error', f'HTTP {answer.status_code}')}: {body.get('error_description', '')}"
            raise Unauthenticated(
                f"{self._name} did not accept this sign-in ({error.strip(': ')}); the code may have been "
                "used already or expired: sign in again"
            )
        access_token = body.get("access_token")
        claims = await self._verified(body["id_token"], pending.nonce, access_token)
        if self.config.policy.groups_claim not in claims and isinstance(access_token, str):
            claims = await self._with_user_info(claims, access_token)
        return claims

    async def _with_user_info(self, claims: dict[str, Any], access_token: str) -> dict[str, Any]:
        """The claims with what the UserInfo endpoint adds: many providers list groups only there."""
        endpoint = (await self._discovered()).get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return claims
        answer = await self._request(
            "GET", endpoint, expect_ok=True, headers={"Authorization": f"Bearer {access_token}"}
        )
        info = _json(answer)
        if info.get("sub") != claims["sub"]:  # OpenID Connect Core 5.3.2: else it is someone else's
            raise Unauthenticated(f"{self._name}'s user info is not about the user its ID token names")
        return {**info, **claims}

    async def _verified(self, id_token: str, nonce: str, access_token: object) -> dict[str, Any]:
        metadata = await self._discovered()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in _ALGORITHMS if a in offered]
        keys = await self._key_set(refresh=False)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=algorithms)
            except InvalidKeyIdError:  # the provider may have rotated its keys since
                token = jwt.decode(id_token, await self._key_set(refresh=True), algorithms=algorithms)
            claims = CodeIDToken(
                token.claims,
                token.header,
                options={
                    "iss": {"essential": True, "value": self.config.issuer},
                    "aud": {"essential": True, "value": self.config.client_id},
                    "sub": {"essential": True},
                },
                params={
                    "nonce": nonce,
                    "client_id": self.config.client_id,
                    "access_token": access_token if isinstance(access_token, str) else None,
                },
            )
            claims.validate(leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            raise Unauthenticated(
                f"the ID token from {self._name} is not valid here ({type(exc).__name__}: {exc}); "
                "sign in again, and if it keeps failing, check the server's OpenID Connect settings"
            ) from None
        return dict(claims)

    @property
    def _name(self) -> str:
        return self.config.display_name

    async def _discovered(self) -> dict[str, Any]:
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_SECONDS:
                url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                metadata = _json(await self._request("GET", url, expect_ok=True))
                self._metadata = _checked(metadata, self.config.issuer, url)
                self._metadata_at = time.monotonic()
            return self._metadata

    async def _key_set(self, refresh: bool) -> KeySet:
        metadata = await self._discovered()
        async with self._lock:
            stale = refresh and time.monotonic() - self._keys_at > KEYS_REFRESH_SECONDS
            if self._keys is None or stale:
                found = _json(await self._request("GET", metadata["jwks_uri"], expect_ok=True))
                try:
                    self._keys = KeySet.import_key_set(found)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    raise ProviderUnavailable(
                        f"the keys {self._name} publishes at {metadata['jwks_uri']} cannot be read: {exc}"
                    ) from None
                self._keys_at = time.monotonic()
            return self._keys

    async def _request(self, method: str, url: str, expect_ok: bool = False, **kwargs: Any) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=self.config.timeout_s, follow_redirects=False) as client:
                answer = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"{self._name} cannot be reached at {url} ({type(exc).__name__}); try again later, or check "
                "LOOPLINE_OIDC_ISSUER"
            ) from None
        if expect_ok and answer.status_code != 200:
            raise ProviderUnavailable(f"{self._name} answered HTTP {answer.status_code} at {url}")
        return answer


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


def _checked(metadata: dict[str, Any], issuer: str, url: str) -> dict[str, Any]:
    """The discovery document, if it is the issuer's own and names every endpoint needed."""
    if metadata.get("issuer") != issuer:
        raise ProviderUnavailable(
            f"{url} names the issuer {metadata.get('issuer')!r}, not {issuer!r}: set LOOPLINE_OIDC_ISSUER "
            "to exactly the issuer the provider names"
        )
    needed = ("authorization_endpoint", "token_endpoint", "jwks_uri")
    missing = [k for k in needed if not isinstance(metadata.get(k), str)]
    secure = issuer.startswith("http://") or all(str(metadata.get(k)).startswith("https://") for k in needed)
    if missing or not secure:
        raise ProviderUnavailable(
            f"{url} does not name every endpoint sign-in needs over https (authorization_endpoint, "
            f"token_endpoint, jwks_uri){': missing ' + ', '.join(missing) if missing else ''}"
        )
    return metadata
