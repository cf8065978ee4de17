"""One log record per request, a request id on every response, and the one ERROR record of a 500.

``RequestLogMiddleware`` (put it right after ``SecurityMiddleware``):

* takes the proxy's ``X-Request-ID`` when it is well formed (letters, digits
  and ``._:+/=-``, at most 128), else makes one, sets ``request.request_id``
  and answers it in ``X-Request-ID``;
* writes one record per request naming the method, the matched URL pattern
  (``/billing/portal/return``, never the raw path: paths and query strings
  carry OAuth codes, hosted-page ids and tokens), the status and the id, at
  INFO, or at ERROR for a 5xx, with the exception type and traceback when an
  exception caused it. Never a header, cookie, query string or body.
* leaves the pattern and the id in the WSGI environ (``orgbilling.route``,
  ``orgbilling.request_id``), so the server's access log can name them instead
  of the raw request line (``billing_project/gunicorn.conf.py``).

Django's own ``django.request`` logger would add a second ERROR record per 500
(with the raw path): the reference project's ``LOGGING`` sends it nowhere.
``server_error`` is a ``handler500`` that shows the id, for support to quote.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.core.signals import got_request_exception
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.template import loader

logger = logging.getLogger("orgbilling.requests")

REQUEST_ID_HEADER = "X-Request-ID"
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
UNMATCHED = "-"  # the route of a request no URL pattern matched (a 404, a static file)


def request_id_for(request: HttpRequest) -> str:
    """The proxy's request id when it is well formed, else a new one."""
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if WELL_FORMED_ID.fullmatch(offered) else uuid.uuid4().hex


def route_of(request: HttpRequest) -> str:
    """The URL pattern the request matched (``/auth/callback``), or ``-``."""
    match = getattr(request, "resolver_match", None)
    return f"/{match.route}" if match is not None and match.route is not None else UNMATCHED


@receiver(got_request_exception)
def _keep_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Django is about to answer 500 for an unhandled exception: keep it for the request's one record."""
    if request is not None:
        request.orgbilling_exc_info = sys.exc_info()


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request.request_id = request_id_for(request)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        route = route_of(request)
        request.META["orgbilling.route"], request.META["orgbilling.request_id"] = route, request.request_id
        billing = getattr(request, "billing", None)
        fields = {
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "request_id": request.request_id,
            "organization": getattr(billing, "organization_id", None),
        }
        message, args = "%s %s %s id=%s", [request.method, route, response.status_code, request.request_id]
        # Set by _keep_exception; a 5xx without one is the view's own answer (a failed webhook, a 503).
        exc_info = getattr(request, "orgbilling_exc_info", None)
        if exc_info is not None:
            fields["exception_type"] = type(exc_info[1]).__name__
            message += " exception=%s"
            args.append(fields["exception_type"])
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        logger.log(level, message, *args, exc_info=exc_info, extra=fields)
        return response


def server_error(request: HttpRequest, template_name: str = "orgbilling/500.html") -> HttpResponse:
    """``handler500``: the error page with the request id, rendered without context processors (nothing may fail)."""
    body = loader.get_template(template_name).render({"request_id": getattr(request, "request_id", "")})
    return HttpResponseServerError(body)
