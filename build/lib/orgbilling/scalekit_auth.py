"""Scalekit sign-in: access-token validation, and glue around the SDK's Django integration.

Sign-in, the OAuth callback and transparent token refresh are the SDK's own
(``scalekit.frameworks.django``: ``state`` checking, ``returnTo`` sanitising,
an AES-GCM encrypted session cookie). What is added here, and why:

* The SDK trusts its cookie until expiry and caches signing keys forever, so
  the access token inside the cookie, like any Bearer token, is verified here
  on every request with PyJWT: RS256 only, ``exp``, ``iss`` and ``aud``, keys
  from ``{SCALEKIT_ENV_URL}/keys`` cached per process and re-fetched (rate
  limited) when a token names an unknown ``kid``, so key rotation needs no
  restart.
* The SDK's middleware builds its client (network I/O) on any request; it is
  only run for requests carrying its cookie (``orgbilling.middleware`` skips
  webhook and static paths).
* The SDK's logout view answers GET, which any page could trigger; here it
  answers POST with a CSRF token only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import jwt
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST
from scalekit.frameworks import django as scalekit_django

from . import conf

logger = logging.getLogger(__name__)

ALGORITHMS = ["RS256"]
CLOCK_SKEW = 30  # seconds of leeway on exp/nbf/iat for clocks that drift apart
JWKS_TIMEOUT = 5  # seconds; a JWKS fetch blocks the request that needs it


class InvalidToken(Exception):
    """A token failed validation; the message says why (for logs, never shown to users)."""


@lru_cache(maxsize=8)
def _jwks_client(url: str, lifespan: float, cooldown: float) -> jwt.PyJWKClient:
    """One key client per JWKS URL and policy for the process, so its key cache is shared."""
    return jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=lifespan, cooldown_duration=cooldown, timeout=JWKS_TIMEOUT)


# Tokens already verified: token -> (its signing key object, kid, valid until, claims). A hit is
# trusted only while the JWKS still serves that very key object (a rotation or refetch replaces it)
# and the token has not expired, so it answers exactly as a fresh check would, without the RSA work.
_verified: dict[tuple[str, str, str], tuple[Any, str, float, dict[str, Any]]] = {}
MAX_VERIFIED = 10_000
VERIFIED_FOR = 60  # seconds a verified token is remembered at most


def _key(keys: jwt.PyJWKClient, kid: str) -> jwt.PyJWK:
    try:
        return keys.get_signing_key(kid)
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None


def validate_access_token(token: str) -> dict[str, Any]:
    """Return the claims of a Scalekit access token, or raise ``InvalidToken``.

    The algorithm is pinned before any key is looked up, so ``alg: none`` and
    HMAC tokens signed with the public key are refused outright.
    """
    env_url = conf.get("SCALEKIT_ENV_URL").rstrip("/")
    audience = conf.get("ORGBILLING_TOKEN_AUDIENCE") or conf.get("SCALEKIT_CLIENT_ID")
    if not env_url or not audience:
        raise InvalidToken("Scalekit is not configured (SCALEKIT_ENV_URL, SCALEKIT_CLIENT_ID)")
    issuer = conf.get("ORGBILLING_TOKEN_ISSUER") or env_url
    keys = _jwks_client(
        f"{env_url}/keys",
        float(conf.get("ORGBILLING_JWKS_CACHE_SECONDS")),
        float(conf.get("ORGBILLING_JWKS_REFETCH_COOLDOWN")),
    )
    remembered = _verified.get((token, issuer, audience))
    if remembered is not None:
        key, kid, until, claims = remembered
        if time.time() < until and _key(keys, kid) is key:
            return claims
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"malformed token: {exc}") from None
    if header.get("alg") not in ALGORITHMS:
        raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
    if not isinstance(header.get("kid"), str):
        raise InvalidToken("token names no signing key (kid)")
    key = _key(keys, header["kid"])
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            leeway=CLOCK_SKEW,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if len(_verified) >= MAX_VERIFIED:
        _verified.clear()
    until = min(float(claims["exp"]) + CLOCK_SKEW, time.time() + VERIFIED_FOR)
    _verified[(token, issuer, audience)] = (key, header["kid"], until, claims)
    return claims


def bearer_token(header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; empty for any other scheme."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def has_session_cookie(request: HttpRequest) -> bool:
    """Whether the SDK's cookie came along; without an encryption secret no session can exist."""
    return bool(conf.get("SCALEKIT_COOKIE_ENCRYPTION_SECRET") and request.COOKIES.get(conf.get("SCALEKIT_COOKIE_NAME")))


def session_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """The SDK's middleware (cookie check and transparent refresh) around ``get_response``.

    Its client is built on the first request that reaches it, not here.
    """
    return scalekit_django.ScalekitAuthMiddleware(get_response)


def session_identity(request: HttpRequest) -> tuple[dict[str, Any], str]:
    """Claims of the access token in the SDK's session cookie, and the user's email.

    Call it inside ``session_middleware``: after a refresh the new token is in
    the cookie being set, not in the one the browser sent. Raises
    ``InvalidToken`` when there is no usable session.
    """
    result = getattr(request, "scalekit_session_result", None)
    if result is None or not result.authenticated:
        raise InvalidToken(f"no session ({getattr(result, 'reason', 'middleware not run')})")
    cookie = result.new_cookie_value or request.COOKIES.get(conf.get("SCALEKIT_COOKIE_NAME"), "")
    payload = scalekit_django.get_config().manager.read_session(cookie) or {}
    claims = validate_access_token(payload.get("access_token") or "")
    return claims, _email(payload.get("id_token"), claims["sub"])


def _email(id_token: str | None, subject: str) -> str:
    """The email in the session's ID token, if it is the same user's.

    Its signature and expiry are not checked again: the cookie holding it is
    sealed (AES-GCM) by this server, which stored it straight from the code
    exchange, and the SDK keeps the first ID token across refreshes, so it
    expires long before the session does.
    """
    if not id_token:
        return ""
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    email = claims.get("email")
    return email if claims.get("sub") == subject and isinstance(email, str) else ""


def sign_in_url(request: HttpRequest) -> str:
    """Where a signed-out browser is sent; the SDK brings it back to this page (or, after a POST, billing)."""
    return_to = request.get_full_path() if request.method == "GET" else reverse("orgbilling:billing")
    return f"{reverse('orgbilling:login')}?returnTo={quote(return_to, safe='')}"


@require_GET
def login_view(request: HttpRequest) -> HttpResponse:
    """The SDK's sign-in, minus any ``returnTo`` Django does not consider same-site.

    The SDK's own check lets ``/\\evil.example`` through, which browsers read as ``//evil.example``.
    """
    return_to = request.GET.get("returnTo")
    if return_to and not url_has_allowed_host_and_scheme(return_to, {request.get_host()}, request.is_secure()):
        request.GET = request.GET.copy()
        del request.GET["returnTo"]
    return scalekit_django.login_view(request)
callback_view = require_GET(scalekit_django.callback_view)
logout_view = require_POST(csrf_protect(scalekit_django.logout_view))
