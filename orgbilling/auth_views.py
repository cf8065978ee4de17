"""Sign-in, the OAuth callback and sign-out: the Scalekit SDK's views, with three changes.

* Each answers 503 (``SignInUnavailable``) while the SDK's client cannot be
  built, instead of a 500 (``scalekit_auth.sdk_config``).
* Sign-in drops a ``returnTo`` Django does not consider same-site: the SDK's
  own check lets ``/\\evil.example`` through, which browsers read as ``//evil.example``.
* Sign-out answers POST with a CSRF token only (the SDK's answers GET, which any page could trigger).
"""

from __future__ import annotations

from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST
from scalekit.frameworks import django as scalekit_django

from .decorators import View, refusal
from .errors import SignInUnavailable
from .scalekit_auth import sdk_config


def _with_sdk(view: View) -> View:
    @wraps(view)
    def wrapped(request: HttpRequest) -> HttpResponse:
        try:
            sdk_config()
        except SignInUnavailable as problem:
            return refusal(request, problem)
        return view(request)

    return wrapped


@require_GET
@_with_sdk
def login_view(request: HttpRequest) -> HttpResponse:
    return_to = request.GET.get("returnTo")
    if return_to and not url_has_allowed_host_and_scheme(return_to, {request.get_host()}, request.is_secure()):
        request.GET = request.GET.copy()
        del request.GET["returnTo"]
    return scalekit_django.login_view(request)


callback_view = require_GET(_with_sdk(scalekit_django.callback_view))
logout_view = require_POST(csrf_protect(_with_sdk(scalekit_django.logout_view)))
