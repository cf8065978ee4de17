"""The fake Scalekit's management API (REST under the environment URL), with Scalekit's shapes.

``GET /api/v1/organizations`` (``page_size`` 10-100, ``page_token``),
``GET /api/v1/organizations/{id}``, its members (``GET .../users``, page size
1-100) and its seat cap (``PATCH .../settings/usermanagement``), behind a client-credentials token from
``/oauth/token``. Errors are grpc-gateway's ``{"code", "message", "details"}``,
as Scalekit's REST answers are. ``faults()`` makes the next calls fail (a
list page that fails midway, an outage), as the fake Chargebee's faults do.
"""

from __future__ import annotations

import base64
import binascii
import json

import jwt
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from sandbox import runtime, scim
from sandbox.scalekit_directory import DirectoryError, Record, membership_status

# grpc status codes Scalekit's REST errors carry beside the HTTP status
GRPC_CODES = {400: 3, 401: 16, 404: 5, 429: 8, 500: 13, 503: 14}
MIN_PAGE, MAX_PAGE, DEFAULT_PAGE = 10, 100, 10
MAX_DIRECTORY_PAGE = 30
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
    runtime.scalekit_faults().record(request.method, path)
    if hold := runtime.scalekit_faults().take_hold(path):
        hold.wait()
    status = runtime.scalekit_faults().take(path)
    return _error(status, "injected fault") if status else None


def organization_body(organization: Record) -> Record:
    """An organization as the management API returns it (webhooks carry the same fields)."""
    keys = ("id", "display_name", "external_id", "metadata", "region_code", "create_time", "update_time")
    return {**{key: organization.get(key) for key in keys}, "settings": SETTINGS}


def _page(
    request: HttpRequest, key: str, records: list[Record], min_size: int, max_size: int = MAX_PAGE
) -> JsonResponse:
    """One page of ``records`` as Scalekit lists answer (``page_size``, opaque ``page_token``)."""
    try:
        size = int(request.GET.get("page_size") or DEFAULT_PAGE)
        token = request.GET.get("page_token")
        start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return _error(400, "invalid page_size or page_token")
    if not min_size <= size <= max_size:
        return _error(400, f"page_size must be between {min_size} and {max_size}")
    following = start + size if start + size < len(records) else None
    return JsonResponse(
        {
            key: records[start : start + size],
            "next_page_token": base64.urlsafe_b64encode(str(following).encode()).decode() if following else "",
            "prev_page_token": "",
            "total_size": len(records),
        }
    )


@require_GET
def organization_list(request: HttpRequest) -> JsonResponse:
    if refusal := _refusal(request):
        return refusal
    # In creation order, so a rename between two pages cannot move an organization past the reader.
    organizations = sorted(runtime.directory().organizations(), key=lambda org: (org["create_time"], org["id"]))
    return _page(request, "organizations", [organization_body(org) for org in organizations], MIN_PAGE)


def user_body(user: Record) -> Record:
    """A user as the members list returns it, with every membership (of any organization)."""
    memberships = [
        {
            "organization_id": org_id,
            "membership_status": membership_status(user, org_id),
            "roles": [{"name": role}],
            "join_time": user.get("create_time"),
            "expires_at": None,
            "provisioning_method": "",
        }
        for org_id, role in user["memberships"].items()
    ]
    return {"id": user["id"], "email": user["email"], "external_id": None, "metadata": {}, "memberships": memberships}


@require_GET
def organization_users(request: HttpRequest, organization_id: str) -> JsonResponse:
    if refusal := _refusal(request):
        return refusal
    directory = runtime.directory()
    try:
        directory.organization(organization_id)
    except DirectoryError:
        return _error(404, f"organization {organization_id} not found")
    return _page(request, "users", [user_body(user) for user in directory.organization_users(organization_id)], 1)


@csrf_exempt
@require_http_methods(["PATCH"])
def user_management_settings(request: HttpRequest, organization_id: str) -> JsonResponse:
    """Set ``max_allowed_users`` (0: no limit); held first when a test asked (``Faults.hold_next``)."""
    if refusal := _refusal(request):
        return refusal
    try:
        limit = json.loads(request.body)["settings"]["max_allowed_users"]
    except (ValueError, KeyError, TypeError):
        return _error(400, 'expected {"settings": {"max_allowed_users": N}}')
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        return _error(400, "max_allowed_users must be a whole number >= 0")
    try:
        runtime.directory().set_max_allowed_users(organization_id, limit)
    except DirectoryError:
        return _error(404, f"organization {organization_id} not found")
    return JsonResponse({"settings": {"max_allowed_users": limit}})


@require_GET
def organization_detail(request: HttpRequest, organization_id: str) -> JsonResponse:
    if refusal := _refusal(request):
        return refusal
    try:
        return JsonResponse({"organization": organization_body(runtime.directory().organization(organization_id))})
    except DirectoryError:
        return _error(404, f"organization {organization_id} not found")


@require_GET
def directories(request: HttpRequest, organization_id: str) -> JsonResponse:
    if refusal := _refusal(request):
        return refusal
    try:
        return JsonResponse({"directories": [scim.directory(organization_id)]})
    except DirectoryError:
        return _error(404, f"organization {organization_id} not found")


@require_GET
def directory_users(request: HttpRequest, organization_id: str, directory_id: str) -> JsonResponse:
    """Users of one directory (``page_size`` 1-30; ``updated_after``: only users changed since), as Scalekit lists."""
    if refusal := _refusal(request):
        return refusal
    try:
        if scim.directory(organization_id)["id"] != directory_id:
            raise DirectoryError(directory_id)
    except DirectoryError:
        return _error(404, f"directory {directory_id} not found")
    listed = scim.users(organization_id, updated_after=request.GET.get("updated_after", ""))
    return _page(request, "users", [scim.user_body(user) for user in listed], 1, MAX_DIRECTORY_PAGE)
