"""Attach ``request.billing``: who is signed in, for which organization.

Like Django's ``AuthenticationMiddleware`` it adds one attribute and decides
nothing: views and services refuse what they must. ``request.billing`` is a
``BillingContext``, or None when the request carries no valid Scalekit token.

* ``Authorization: Bearer <token>`` (the scheme in any case; API clients) is
  used alone: a request that sends it is never authenticated by a cookie it
  may also carry, even when the token is empty or invalid, so a front end
  cannot be confused into acting with the browser's session.
* Any other ``Authorization`` scheme (a proxy's ``Basic``, say), or an empty
  header, is not a sign-in attempt and is ignored.
* Otherwise the Scalekit SDK's session cookie is read (and refreshed) by the
  SDK's middleware, and the access token inside it is validated the same way.
* Webhook and static paths are not looked at: the SDK client is never built
  for them, no cookie is read or set, and a vendor's Basic Auth header is not
  mistaken for sign-in. Webhooks are recognized by their route, so this holds
  wherever the project mounts orgbilling.

The one answer it gives itself: while Scalekit cannot be reached to check the
token (the SDK's client cannot be built, or the JWKS cannot be read and the
token's key was never served), 503 with ``Retry-After`` (JSON for APIs), never
a 500 and never a sign-in redirect that would loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.functional import SimpleLazyObject

from . import conf, scalekit_auth
from .decorators import refusal
from .errors import SignInUnavailable
from .models import Organization

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BillingContext:
    """The signed-in user as billing sees them; ``organization_id`` is empty without ``oid``."""

    user_id: str
    organization_id: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    email: str
    organization: Organization | None
    bearer: bool  # authenticated by an Authorization header (no CSRF token needed)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


# Organization ids this process has already made sure exist (bounded: cleared when full).
_seen_organizations: set[str] = set()
MAX_SEEN = 100_000


def _ensure_organization(organization_id: str) -> None:
    """Create the organization row on first sight, once per process rather than once per request."""
    if organization_id not in _seen_organizations:
        Organization.objects.get_or_create(id=organization_id)
        if len(_seen_organizations) >= MAX_SEEN:
            _seen_organizations.clear()
        _seen_organizations.add(organization_id)


def forget_seen_organizations() -> None:
    """Make the next request of every organization check its row again (tests roll rows back)."""
    _seen_organizations.clear()


def _load_organization(organization_id: str) -> Organization:
    return Organization.objects.get_or_create(id=organization_id)[0]


def context_from_claims(claims: dict[str, Any], *, email: str = "", bearer: bool) -> BillingContext | None:
    """Build the context from validated claims, creating the organization on first sight.

    An organization whose Scalekit webhook never arrived still gets a row (no
    Chargebee call: its customer is created at checkout), so it can subscribe.
    The ``Organization`` itself is loaded lazily, on first use, so a request
    that needs only its id (the subscription list) costs no extra query.
    """
    user_id, organization_id = claims.get("sub"), claims.get("oid") or ""
    if not isinstance(user_id, str) or not user_id or not isinstance(organization_id, str):
        return None
    if len(organization_id) > 50:  # longer than a Chargebee customer id can be
        return None
    organization = None
    if organization_id:
        _ensure_organization(organization_id)
        organization = SimpleLazyObject(partial(_load_organization, organization_id))
    return BillingContext(
        user_id=user_id,
        organization_id=organization_id,
        roles=_strings(claims.get("roles")),
        permissions=_strings(claims.get("permissions")),
        email=email,
        organization=organization,
        bearer=bearer,
    )


WEBHOOK_ROUTES = ("orgbilling:scalekit-webhook", "orgbilling:chargebee-webhook")


@lru_cache(maxsize=16)
def _webhook_paths(urlconf: str | None) -> frozenset[str]:
    """orgbilling's webhook routes as ``path_info`` shows them, wherever the URLconf mounts them."""
    script_prefix = get_script_prefix()  # reverse() starts with it; path_info never does
    paths = set()
    for name in WEBHOOK_ROUTES:
        try:
            paths.add("/" + reverse(name, urlconf=urlconf).removeprefix(script_prefix))
        except NoReverseMatch:  # a project that does not route one of them
            continue
    return frozenset(paths)


@receiver(setting_changed)
def _forget_webhook_paths(*, setting: str, **kwargs: Any) -> None:
    if setting == "ROOT_URLCONF":
        _webhook_paths.cache_clear()


def _exempt(request: HttpRequest) -> bool:
    static_url = settings.STATIC_URL or ""
    if static_url.startswith("/") and request.path.startswith(static_url):
        return True
    if request.path_info in _webhook_paths(getattr(request, "urlconf", None) or get_urlconf()):
        return True
    return any(request.path_info.startswith(prefix) for prefix in conf.get_list("ORGBILLING_AUTH_EXEMPT_PATHS"))


class BillingContextMiddleware:
    """Set ``request.billing`` on every request; see the module docstring for the order of sources."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.with_session = scalekit_auth.session_middleware(self._from_session)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.billing = None
        if _exempt(request):
            return self.get_response(request)
        token = scalekit_auth.bearer_token(request.headers.get("Authorization", ""))
        try:
            if token is not None:
                return self._from_bearer(request, token)
            if scalekit_auth.has_session_cookie(request):
                scalekit_auth.sdk_config()  # a failed build is a 503 here, not a 500 in the SDK's middleware
                return self.with_session(request)
        except SignInUnavailable as problem:
            return refusal(request, problem)
        return self.get_response(request)

    def _from_bearer(self, request: HttpRequest, token: str) -> HttpResponse:
        try:
            claims = scalekit_auth.validate_access_token(token)
        except scalekit_auth.InvalidToken as exc:
            logger.info("bearer token refused: %s", exc)
        else:
            request.billing = context_from_claims(claims, bearer=True)
        return self.get_response(request)

    def _from_session(self, request: HttpRequest) -> HttpResponse:
        try:
            claims, email = scalekit_auth.session_identity(request)
        except scalekit_auth.InvalidToken as exc:
            logger.info("session token refused: %s", exc)
        else:
            request.billing = context_from_claims(claims, email=email, bearer=False)
        return self.get_response(request)
