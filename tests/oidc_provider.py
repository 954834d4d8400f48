"""A small but real OpenID Connect provider on 127.0.0.1, for tests: Authlib's authorization
server (authorization code grant, PKCE, the OpenID Connect code flow) in Flask, an RSA key made
with cryptography, a discovery document and a JWKS.

Its authorize endpoint signs in whoever the test set as `provider.user` without a login
form (nobody: it answers access_denied). Knobs let a test make it misbehave: sign ID tokens
with a key it does not publish, or issue them to another audience."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, jsonify, request
from joserfc.jwk import RSAKey
from markupsafe import escape
from werkzeug.serving import make_server

from tests.conftest import free_port

KEY_ID = "provider-key-1"


def rsa_key(kid: str = KEY_ID) -> RSAKey:
    """A new 2048-bit RSA signing key, made by cryptography, as a JWK."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return RSAKey.import_key(pem, {"kid": kid, "use": "sig", "alg": "RS256"})


@dataclass
class ProviderUser:
    """A person with an account at the provider."""

    sub: str
    preferred_username: str
    email: str
    groups: list[str] = field(default_factory=list)

    def get_user_id(self) -> str:
        return self.sub


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uri: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "email", "profile", "groups"}
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: ProviderUser
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class TestProvider:
    """The provider's state: clients, codes not yet used, who signs in next, and the knobs."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, port: int, host_name: str) -> None:
        self.issuer = f"http://{host_name}:{port}"
        self.key = rsa_key()
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.user: ProviderUser | None = None
        self.forge_with: RSAKey | None = None  # signs ID tokens with this unpublished key
        self.audience: str | None = None  # issues ID tokens to this audience instead
        self.groups_in_id_token = True  # False: groups only from the UserInfo endpoint
        self.ask_first = False  # True: the authorize endpoint shows a page with a Continue button
        self.access_tokens: dict[str, ProviderUser] = {}
        self.token_requests = 0

    def register(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.clients[client_id] = Client(client_id, client_secret, redirect_uri)

    def reset(self) -> None:
        self.user, self.forge_with, self.audience = None, None, None
        self.groups_in_id_token, self.ask_first = True, False


def _app(provider: TestProvider) -> Flask:
    app = Flask("test-oidc-provider")

    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, request: Any) -> None:
            data = request.payload.data
            provider.codes[code] = Code(
                code, request.client.client_id, request.payload.redirect_uri, request.scope, request.user,
                data.get("nonce"), data.get("code_challenge"), data.get("code_challenge_method"),
            )  # fmt: skip

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = provider.codes.get(code)
            return found if found is not None and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            provider.codes.pop(authorization_code.code, None)  # each code works once

        def authenticate_user(self, authorization_code: Code) -> ProviderUser:
            return authorization_code.user

    class IdTokens(OpenIDCode):  # type: ignore[misc]
        def resolve_client_private_key(self, client: Client) -> RSAKey:
            return provider.forge_with or provider.key

        def get_client_algorithm(self, client: Client) -> str:
            return "RS256"

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": KEY_ID}

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            return {"iss": provider.issuer, "aud": [provider.audience or client.client_id]}

        def exists_nonce(self, nonce: str, request: Any) -> bool:
            return any(c.nonce == nonce for c in provider.codes.values())

        def generate_user_info(self, user: ProviderUser, scope: str) -> UserInfo:
            info = UserInfo(sub=user.sub, preferred_username=user.preferred_username, email=user.email)
            if "groups" in scope.split() and provider.groups_in_id_token:
                info["groups"] = list(user.groups)
            return info

    def save_token(token: dict[str, Any], request: Any) -> None:
        provider.access_tokens[token["access_token"]] = request.user

    server = AuthorizationServer(app, query_client=provider.clients.get, save_token=save_token)
    server.register_grant(CodeGrant, [CodeChallenge(required=True), IdTokens(require_nonce=True)])

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        return jsonify(
            issuer=provider.issuer,
            authorization_endpoint=f"{provider.issuer}/authorize",
            token_endpoint=f"{provider.issuer}/token",
            jwks_uri=f"{provider.issuer}/jwks",
            userinfo_endpoint=f"{provider.issuer}/userinfo",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
            code_challenge_methods_supported=["S256"],
            scopes_supported=["openid", "email", "profile", "groups"],
        )

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify(keys=[provider.key.as_dict(private=False)])

    @app.get("/favicon.ico")
    def favicon() -> Any:
        return "", 204

    @app.get("/userinfo")
    def userinfo() -> Any:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user = provider.access_tokens.get(token) if scheme.lower() == "bearer" else None
        if user is None:
            return jsonify(error="invalid_token"), 401
        return jsonify(sub=user.sub, preferred_username=user.preferred_username, groups=user.groups)

    @app.get("/authorize")
    def authorize() -> Any:
        if provider.ask_first and "confirmed" not in request.args:
            # A page of the provider's own, as a real one shows: going on starts from its site.
            fields = "".join(
                f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                for k, v in request.args.items()
            )
            return (
                f'<form action="/authorize">{fields}<input type="hidden" name="confirmed" value="1">'
                '<button type="submit">Continue</button></form>'
            )
        try:
            grant = server.get_consent_grant(end_user=provider.user)
        except OAuth2Error as error:
            return server.handle_error_response(server.create_oauth2_request(None), error)
        return server.create_authorization_response(grant_user=provider.user, grant=grant)

    @app.post("/token")
    def token() -> Any:
        provider.token_requests += 1
        return server.create_token_response()

    return app


@contextlib.contextmanager
def running_provider(host_name: str = "127.0.0.1") -> Iterator[TestProvider]:
    """The provider, serving on 127.0.0.1 until the block ends; its URLs name `host_name`
    (`localhost` makes it another site than a server at 127.0.0.1, as a real provider is)."""
    port = free_port()
    provider = TestProvider(port, host_name)
    http = make_server("127.0.0.1", port, _app(provider), threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="test-oidc-provider", daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        http.shutdown()
        thread.join()
