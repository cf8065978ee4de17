"""The fake Scalekit's management API (REST under the environment URL), with Scalekit's shapes.

``GET /api/v1/organizations`` (``page_size`` 10-100, ``page_token``) and
``GET /api/v1/organizations/{id}``, behind a client-credentials token from
``/oauth/token``. Errors are grpc-gateway's ``{"code", "message", "details"}``,
as Scalekit's REST answers are. ``faults()`` makes the next calls fail (a
list page that fails midway, an outage), as the fake Chargebee's faults do.
"""

from __future__ import annotations

import base64
import binascii

import jwt
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from sandbox import runtime
from sandbox.scalekit_directory import DirectoryError, Record

# grpc status codes Scalekit's REST errors carry beside the HTTP status
GRPC_CODES = {400: 3, 401: 16, 404: 5, 429: 8, 500: 13, 503: 14}
MIN_PAGE, MAX_PAGE, DEFAULT_PAGE = 10, 100, 10
SETTINGS = {"features": [{"enabled": True, "name": "sso"}, {"enabled": False, "name": "dir_sync"}]}


def _error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"code": GRPC_CODES.get(status, 2), "message": message, "details": []}, status=status)
    if status == 429:
        response["Retry-After"] = "1"
    return response


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """Why this call is not answered (a bad token, an injected fault), or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise jwt.InvalidTokenError("no bearer token")
        runtime.issuer().verify_client_token(token)
    except jwt.PyJWTError:
        return _error(401, "Unauthenticated: the access token is missing, expired or not this environment's")
    path = request.path.split("/sandbox/scalekit", 1)[-1]
    status = runtime.scalekit_faults().take(path)
    return _error(status, "injected fault") if status else None


def organization_body(organization: Record) -> Record:
    """An organization as the management API returns it (webhooks carry the same fields)."""
    keys = ("id", "display_name", "external_id", "metadata", "region_code", "create_time", "update_time")
    return {**{key: organization.get(key) for key in keys}, "settings": SETTINGS}


@require_GET
def organization_list(request: HttpRequest) -> JsonResponse:
    if refusal := _refusal(request):
        return refusal
    try:
        size = int(request.GET.get("page_size") or DEFAULT_PAGE)
        token = request.GET.get("page_token")
        start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return _error(400, "invalid page_size or page_token")
    if not MIN_PAGE <= size <= MAX_PAGE:
        return _error(400, f"page_size must be between {MIN_PAGE} and {MAX_PAGE}")
    # In creation order, so a rename between two pages cannot move an organization past the reader.
    organizations = sorted(runtime.directory().organizations(), key=lambda org: (org["create_time"], org["id"]))
    page = organizations[start : start + size]
    following = start + size if start + size < len(organizations) else None
    return JsonResponse(
        {
            "organizations": [organization_body(org) for org in page],
            "next_page_token": base64.urlsafe_b64encode(str(following).encode()).decode() if following else "",
            "prev_page_token": "",
            "total_size": len(organizations),
        }
    )


@require_GET
def organization_detail(request: HttpRequest, organization_id: str) -> JsonResponse:
    if refusal := _refusal(request):
        return refusal
    try:
        return JsonResponse({"organization": organization_body(runtime.directory().organization(organization_id))})
    except DirectoryError:
        return _error(404, f"organization {organization_id} not found")
