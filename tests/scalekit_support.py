"""A stand-in Scalekit for tests: RSA keys served as a JWKS over real HTTP, tokens, sessions, SDK client.

The JWKS is served by a live local server because PyJWT's key client fetches
with urllib (request mocks do not see it). The SDK's Django views get
``FakeScalekitClient`` through its ``SCALEKIT_CLIENT`` setting, its test seam.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from scalekit.frameworks import django as scalekit_django
from scalekit.middleware.session_crypto import encrypt_session

from orgbilling import scalekit_auth

CLIENT_ID = "skc_test_client"
COOKIE_SECRET = "test-cookie-encryption-secret"
COOKIE_NAME = "sk_session"


@cache
def _private_key(number: int) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make; each test run makes a few and reuses them."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}


class _JwksHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        stub: ScalekitStub = self.server.stub  # type: ignore[attr-defined]
        if self.path != "/keys":
            self.send_error(404)
            return
        stub.jwks_hits += 1
        if stub.jwks_down:
            self.send_error(503)
            return
        if stub.jwks_html:  # a proxy's error page, answered with 200
            self._send(b"<html><body><h1>Bad gateway</h1></body></html>", "text/html")
            return
        keys = [] if stub.jwks_empty else [key.jwk() for key in stub.served_keys]
        self._send(json.dumps({"keys": keys}).encode(), "application/json")

    def do_POST(self) -> None:  # noqa: N802
        """Scalekit's token endpoint, which the SDK's client calls when it is built: down here."""
        stub: ScalekitStub = self.server.stub  # type: ignore[attr-defined]
        if self.path == "/oauth/token":
            with stub.lock:
                stub.token_hits += 1
        self.send_error(503)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``jwks_hits`` instead."""


def reset_process_caches() -> None:
    """Forget what a previous test's environment left in per-process caches.

    The SDK keeps its config; orgbilling keeps one key client per JWKS URL,
    and a new test server may get a port (so a URL) a previous one had.
    """
    scalekit_django.get_config.cache_clear()
    scalekit_auth._jwks_client.cache_clear()


class ScalekitStub:
    """One Scalekit environment: its JWKS server, its signing key, and helpers to sign users in."""

    def __init__(self) -> None:
        self.key = SigningKey("key-1", _private_key(1))
        self.served_keys = [self.key]
        self.jwks_hits = 0
        self.jwks_down = False  # True: /keys answers 503, as during an outage
        self.jwks_html = False  # True: /keys answers 200 with an HTML page
        self.jwks_empty = False  # True: /keys answers a JWKS without any key
        self.token_hits = 0  # POSTs to /oauth/token (always refused: Scalekit's API is down)
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
        self._server.stub = self  # type: ignore[attr-defined]
        # A short poll interval: stop() waits for the loop to notice (0.5 s by default, in every teardown).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()
        self.env_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.client = FakeScalekitClient(self)

    def configure(self, settings) -> None:
        settings.SCALEKIT_ENV_URL = self.env_url
        settings.SCALEKIT_CLIENT_ID = CLIENT_ID
        settings.SCALEKIT_CLIENT_SECRET = "test-client-secret"
        settings.SCALEKIT_COOKIE_ENCRYPTION_SECRET = COOKIE_SECRET
        settings.SCALEKIT_COOKIE_SECURE = False
        settings.SCALEKIT_REDIRECT_URI = "http://testserver/auth/callback"
        settings.SCALEKIT_CLIENT = self.client
        reset_process_caches()

    def stop(self) -> None:
        reset_process_caches()
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> SigningKey:
        """Serve a new key only, as after a key rotation."""
        self.key = SigningKey(f"key-{uuid.uuid4().hex[:8]}", _private_key(2))
        self.served_keys = [self.key]
        return self.key

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.env_url,
            "aud": [CLIENT_ID],
            "sub": "usr_1",
            "oid": "org_1",
            "exp": now + 300,
            "iat": now,
            "nbf": now,
            "jti": f"tkn_{uuid.uuid4().hex}",
            "sid": "ses_1",
            "client_id": CLIENT_ID,
            "roles": ["admin"],
            "permissions": [],
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, key: SigningKey | None = None, **overrides: Any) -> str:
        """An access token signed with the served key (or ``key``); ``name=None`` drops a claim."""
        key = key or self.key
        return jwt.encode(self.claims(**overrides), key.private, algorithm="RS256", headers={"kid": key.kid})

    def bearer(self, **overrides: Any) -> dict[str, str]:
        """Test-client headers for an API call with a Bearer token."""
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token(**overrides)}"}

    def id_token(self, email: str, **overrides: Any) -> str:
        claims = self.claims(email=email, **overrides)
        return jwt.encode(claims, self.key.private, algorithm="RS256", headers={"kid": self.key.kid})

    def session_cookie(self, *, email: str = "ada@example.com", expires_in: int = 300, **overrides: Any) -> str:
        """The SDK's encrypted session cookie, as its callback view would have set it."""
        access_token = self.token(**overrides)
        payload = {
            "user": jwt.decode(access_token, options={"verify_signature": False}),
            "access_token": access_token,
            "refresh_token": "rt_initial",
            "id_token": self.id_token(email, **{k: v for k, v in overrides.items() if k == "sub"}),
            "expires_at": time.time() + expires_in,
        }
        return encrypt_session(payload, COOKIE_SECRET)

    def sign_in(self, client, **overrides: Any):
        """Give a Django test client the SDK's session cookie; returns the client."""
        client.cookies[COOKIE_NAME] = self.session_cookie(**overrides)
        return client


class FakeScalekitClient:
    """The few ``ScalekitClient`` methods the SDK's Django views and session manager call."""

    def __init__(self, stub: ScalekitStub) -> None:
        self.stub = stub
        self.refreshes: list[str] = []

    def get_authorization_url(self, redirect_uri: str, options: Any) -> str:
        query = urlencode({"redirect_uri": redirect_uri, "state": options.state, "client_id": CLIENT_ID})
        return f"{self.stub.env_url}/oauth/authorize?{query}"

    def authenticate_with_code(self, code: str, redirect_uri: str, options: Any) -> dict[str, Any]:
        return {
            "access_token": self.stub.token(),
            "refresh_token": "rt_from_code",
            "id_token": self.stub.id_token("ada@example.com"),
            "expires_in": 300,
        }

    def validate_access_token_and_get_claims(self, token: str) -> dict[str, Any]:
        return jwt.decode(token, options={"verify_signature": False})

    def refresh_access_token(self, refresh_token: str) -> dict[str, Any]:
        self.refreshes.append(refresh_token)
        return {"access_token": self.stub.token(roles=["admin", "refreshed"]), "refresh_token": f"{refresh_token}+1"}

    def get_logout_url(self, options: Any) -> str:
        query = urlencode({"post_logout_redirect_uri": options.post_logout_redirect_uri})
        return f"{self.stub.env_url}/oidc/logout?{query}"
