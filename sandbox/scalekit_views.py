"""The fake Scalekit's OAuth/OIDC endpoints: what the Scalekit SDK and orgbilling call, nothing more.

``/oauth/authorize`` is a page where the visitor picks who to be (user,
organization, role) instead of typing a password; ``/oauth/token`` serves the
three grants the SDK uses (client credentials in its constructor,
authorization code at the callback, refresh token when the session expires);
``/keys`` is the JWKS; ``/oidc/logout`` ends the session and goes back to the
app. Redirect URIs must be on the app's origin, standing in for the list of
URIs registered in Scalekit's dashboard.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

import jwt
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sandbox import outbound, runtime
from sandbox.scalekit_directory import ROLES, DirectoryError

OAUTH_PARAMS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce")


def _registered(uri: str) -> bool:
    """Stands in for Scalekit's registered redirect URIs: any URL on the app's own origin."""
    target, app = urlsplit(uri), urlsplit(settings.APP_URL)
    return bool(target.scheme) and (target.scheme, target.netloc) == (app.scheme, app.netloc)


def _error_page(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(request, "sandbox/error.html", {"vendor": "Scalekit", "message": message}, status=status)


@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    """GET shows the sign-in choices; POST (the chosen identity) redirects back with a code."""
    params = {name: (request.GET if request.method == "GET" else request.POST).get(name, "") for name in OAUTH_PARAMS}
    if not constant_time_compare(params["client_id"], settings.SCALEKIT_CLIENT_ID):
        return _error_page(request, "Unknown client_id: this application is not registered in the sandbox.")
    if not _registered(params["redirect_uri"]):
        return _error_page(request, f"redirect_uri {params['redirect_uri']!r} is not registered for this application.")
    if params["response_type"] != "code":
        return HttpResponseRedirect(outbound.with_query(params["redirect_uri"], error="unsupported_response_type"))
    directory = runtime.directory()
    if request.method == "GET":
        context = {
            "params": params,
            "memberships": directory.memberships(),
            "users": directory.users(),
            "organizations": directory.organizations(),
            "roles": ROLES,
        }
        return render(request, "sandbox/authorize.html", context)
    if "cancel" in request.POST:
        return HttpResponseRedirect(
            outbound.with_query(params["redirect_uri"], error="access_denied", state=params["state"])
        )
    try:
        directory.user(request.POST.get("user_id", ""))
        directory.organization(request.POST.get("organization_id", ""))
    except DirectoryError as exc:
        return _error_page(request, str(exc))
    if request.POST.get("role") not in ROLES:
        return _error_page(request, f"Pick a role: {', '.join(ROLES)}.")
    code = directory.issue_code(
        {
            "user_id": request.POST["user_id"],
            "organization_id": request.POST["organization_id"],
            "role": request.POST["role"],
            "redirect_uri": params["redirect_uri"],
            "scope": params["scope"],
            "nonce": params["nonce"],
        }
    )
    return HttpResponseRedirect(outbound.with_query(params["redirect_uri"], code=code, state=params["state"]))


def _oauth_error(error: str, description: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": error, "error_description": description}, status=status)


def _client_credentials(request: HttpRequest) -> tuple[str, str]:
    """client_id/client_secret from the form body (what the SDK sends) or HTTP Basic."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
            return user, password
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
    return request.POST.get("client_id", ""), request.POST.get("client_secret", "")


@csrf_exempt
@require_POST
def token(request: HttpRequest) -> JsonResponse:
    """The token endpoint; errors are OAuth's (``invalid_client`` 401, ``invalid_grant`` 400, ...)."""
    client_id, client_secret = _client_credentials(request)
    if not (
        constant_time_compare(client_id, settings.SCALEKIT_CLIENT_ID)
        and constant_time_compare(client_secret, settings.SCALEKIT_CLIENT_SECRET)
    ):
        return _oauth_error("invalid_client", "client authentication failed", 401)
    issuer, directory = runtime.issuer(), runtime.directory()
    grant_type = request.POST.get("grant_type")
    base = {"token_type": "Bearer", "expires_in": issuer.lifetime}
    if grant_type == "client_credentials":
        return JsonResponse({**base, "access_token": issuer.client_token()})
    if grant_type == "authorization_code":
        grant = directory.redeem_code(request.POST.get("code", ""))
        if grant is None or grant["redirect_uri"] != request.POST.get("redirect_uri"):
            return _oauth_error("invalid_grant", "the code is unknown, used, expired or for another redirect_uri")
        try:
            user = directory.user(grant["user_id"])
        except DirectoryError as exc:
            return _oauth_error("invalid_grant", str(exc))
        body = {
            **base,
            "access_token": issuer.access_token(grant),
            "id_token": issuer.id_token(grant, user),
            "scope": grant["scope"],
        }
        if "offline_access" in grant["scope"].split():
            body["refresh_token"] = directory.issue_refresh_token(grant)
        return JsonResponse(body)
    if grant_type == "refresh_token":
        rotated = directory.rotate_refresh_token(request.POST.get("refresh_token", ""))
        if rotated is None:
            return _oauth_error("invalid_grant", "the refresh token is unknown or was already used")
        grant, refresh_token = rotated
        try:
            directory.organization(grant["organization_id"])
        except DirectoryError as exc:
            return _oauth_error("invalid_grant", str(exc))
        return JsonResponse({**base, "access_token": issuer.access_token(grant), "refresh_token": refresh_token})
    return _oauth_error("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")


@require_GET
def keys(request: HttpRequest) -> JsonResponse:
    return JsonResponse(runtime.issuer().jwks())


@require_GET
def logout(request: HttpRequest) -> HttpResponse:
    """End the session named by ``id_token_hint`` and return to ``post_logout_redirect_uri``."""
    redirect_uri = request.GET.get("post_logout_redirect_uri", "")
    if redirect_uri and not _registered(redirect_uri):
        return _error_page(request, f"post_logout_redirect_uri {redirect_uri!r} is not registered.")
    hint = request.GET.get("id_token_hint")
    if hint:
        try:
            sid = runtime.issuer().decode(hint, verify_exp=False).get("sid")
        except jwt.PyJWTError:
            return _error_page(request, "id_token_hint is not a token issued by this environment.")
        if sid:
            runtime.directory().end_session(sid)
    if not redirect_uri:
        return render(request, "sandbox/error.html", {"vendor": "Scalekit", "message": "You are signed out."})
    return HttpResponseRedirect(outbound.with_query(redirect_uri, state=request.GET.get("state", "")))
