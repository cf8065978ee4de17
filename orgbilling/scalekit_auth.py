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
* The SDK's middleware builds its client (network I/O: it fetches a token) on
  any request; it is only run for requests carrying its cookie
  (``orgbilling.middleware`` skips webhook and static paths). When the build
  fails (Scalekit unreachable), ``sdk_config`` raises ``SignInUnavailable``
  (503) and lets no request of the process try again for
  ``ORGBILLING_SIGN_IN_RETRY_SECONDS``, instead of a 500 and a new attempt per
  request.
* A JWKS that cannot be fetched or read (unreachable, a proxy's HTML error
  page, no usable key) is an outage, not a bad token: a token whose key was
  served before is still verified with it; any other is ``SignInUnavailable``.

The SDK's views (sign-in, callback, sign-out) are wrapped in ``orgbilling.auth_views``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import jwt
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from scalekit.frameworks import django as scalekit_django

from . import conf
from .errors import SignInUnavailable

logger = logging.getLogger(__name__)

ALGORITHMS = ["RS256"]
CLOCK_SKEW = 30  # seconds of leeway on exp/nbf/iat for clocks that drift apart
JWKS_TIMEOUT = 5  # seconds; a JWKS fetch blocks the request that needs it


class InvalidToken(Exception):
    """A token failed validation; the message says why (for logs, never shown to users)."""


class _KeyClient(jwt.PyJWKClient):
    """PyJWT's key client, where a JWKS that cannot be used is an outage, and that remembers the keys last served.

    PyJWT lets a body that is not JSON escape as a ``ValueError`` (a 500) and
    drops its cache when the lifespan ends even if the refetch fails; here
    every unusable answer is a ``PyJWKClientConnectionError`` and ``served``
    keeps the signing keys of the last good answer, for ``_key`` to fall back on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.served: dict[str, jwt.PyJWK] = {}

    def fetch_data(self) -> Any:
        try:
            return super().fetch_data()
        except jwt.PyJWKClientConnectionError:
            raise
        except (ValueError, jwt.PyJWTError) as exc:  # HTML error page, not an object, no usable key
            raise jwt.PyJWKClientConnectionError(f"unusable JWKS: {exc}") from None

    def get_signing_keys(self, refresh: bool = False) -> list[jwt.PyJWK]:
        try:
            keys = super().get_signing_keys(refresh)
        except jwt.PyJWKClientConnectionError:
            raise
        except jwt.PyJWTError as exc:  # a JWKS with no signing key at all
            raise jwt.PyJWKClientConnectionError(f"unusable JWKS: {exc}") from None
        self.served = {key.key_id: key for key in keys}
        return keys


@lru_cache(maxsize=8)
def _jwks_client(url: str, lifespan: float, cooldown: float) -> _KeyClient:
    """One key client per JWKS URL and policy for the process, so its key cache is shared."""
    return _KeyClient(url, cache_jwk_set=True, lifespan=lifespan, cooldown_duration=cooldown, timeout=JWKS_TIMEOUT)


# Tokens already verified: token -> (its signing key object, kid, valid until, claims). A hit is
# trusted only while the JWKS still serves that very key object (a rotation or refetch replaces it)
# and the token has not expired, so it answers exactly as a fresh check would, without the RSA work.
_verified: dict[tuple[str, str, str], tuple[Any, str, float, dict[str, Any]]] = {}
MAX_VERIFIED = 10_000
VERIFIED_FOR = 60  # seconds a verified token is remembered at most


def _key(keys: _KeyClient, kid: str) -> jwt.PyJWK:
    """The served key named ``kid``; an unknown kid is ``InvalidToken``, a JWKS outage ``SignInUnavailable``."""
    try:
        return keys.get_signing_key(kid)
    except jwt.PyJWKClientConnectionError as exc:
        if kid in keys.served:
            return keys.served[kid]
        logger.warning("Scalekit signing keys unavailable: %s", exc)
        raise SignInUnavailable(float(conf.get("ORGBILLING_JWKS_REFETCH_COOLDOWN"))) from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None


def validate_access_token(token: str) -> dict[str, Any]:
    """Return the claims of a Scalekit access token, or raise ``InvalidToken`` (or ``SignInUnavailable``).

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


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (any case; empty when missing).

    None for any other scheme or an empty header: a proxy's Basic Auth, say, is not a sign-in attempt.
    """
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def has_session_cookie(request: HttpRequest) -> bool:
    """Whether the SDK's cookie came along; without an encryption secret no session can exist."""
    return bool(conf.get("SCALEKIT_COOKIE_ENCRYPTION_SECRET") and request.COOKIES.get(conf.get("SCALEKIT_COOKIE_NAME")))


def session_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """The SDK's middleware (cookie check and transparent refresh) around ``get_response``.

    Its client is built on the first request that reaches it, not here; call
    ``sdk_config`` first so a failed build is a 503, not a 500.
    """
    return scalekit_django.ScalekitAuthMiddleware(get_response)


# The SDK's lru_cache remembers a built client but not a failure, so every request would try again.
_build_lock = threading.Lock()
_build_failed_at: float | None = None
clock: Callable[[], float] = time.monotonic  # tests move time instead of sleeping


def sdk_config() -> scalekit_django.ScalekitAuthConfig:
    """The SDK's configuration with its client, built once per process; ``SignInUnavailable`` while it cannot be.

    After a failed build no request of this process tries again for
    ``ORGBILLING_SIGN_IN_RETRY_SECONDS``; requests arriving during a build wait
    for its outcome instead of starting their own.
    """
    global _build_failed_at
    retry_after = float(conf.get("ORGBILLING_SIGN_IN_RETRY_SECONDS"))
    with _build_lock:
        if _build_failed_at is not None and clock() - _build_failed_at < retry_after:
            raise SignInUnavailable(retry_after - (clock() - _build_failed_at))
        try:
            config = scalekit_django.get_config()
        except Exception as exc:  # noqa: BLE001  whatever the SDK raises (network, HTTP, gRPC), sign-in is down
            _build_failed_at = clock()
            logger.warning("Scalekit SDK client not built (%s); next try in %ss", type(exc).__name__, retry_after)
            raise SignInUnavailable(retry_after) from None
        _build_failed_at = None
        return config


@receiver(setting_changed)
def _forget_sdk_config(*, setting: str, **kwargs: Any) -> None:
    """Build the SDK's client again on next use once a Scalekit setting changed (tests swap environments)."""
    global _build_failed_at
    if setting.startswith("SCALEKIT_"):
        with _build_lock:
            _build_failed_at = None
            scalekit_django.get_config.cache_clear()


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
