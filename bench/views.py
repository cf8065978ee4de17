"""Bare Django views, the baselines orgbilling's endpoints are compared with.

They run in the same server, behind the same middleware, as orgbilling's
views, so a ratio measures only what orgbilling adds: token checks, locks,
its queries.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import Row


@require_GET
def read_row(request: HttpRequest, key: str) -> JsonResponse:
    """One row by its unique (indexed) key."""
    row = Row.objects.filter(key=key).values("key", "body").first()
    return JsonResponse(row or {"error": "no such row"}, status=200 if row else 404)


@csrf_exempt
@require_POST
def insert_row(request: HttpRequest) -> JsonResponse:
    """One insert of the request body, as a webhook endpoint that only stored its delivery would do."""
    Row.objects.create(key=uuid.uuid4().hex, body=request.body.decode("utf-8"))
    return JsonResponse({"status": "stored"})
