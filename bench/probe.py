"""Per-request counters, sent back as response headers: SQL queries and outbound connections.

Headers, because gunicorn workers are other processes, and DEBUG (which
would log queries) would change what is measured. Queries are counted by a
database execute wrapper; outbound connections by wrapping
``socket.socket.connect``, which every Python HTTP client (urllib for the
JWKS, httpx for Chargebee) goes through. Installed in bench servers only.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse

from .stack_depth import HEADER, padded

_connects = 0
_socket_connect = socket.socket.connect


def _counting_connect(self: socket.socket, address: Any) -> None:
    global _connects
    _connects += 1
    _socket_connect(self, address)


socket.socket.connect = _counting_connect  # type: ignore[method-assign]


def connects() -> int:
    """Outbound connections this process has opened so far."""
    return _connects


def _depth(request: HttpRequest) -> int:
    """The stack padding the load generator asked for (``bench.stack_depth``), at most 200 frames."""
    value = request.headers.get(HEADER, "")
    return min(int(value), 200) if value.isdecimal() else 0


class ProbeMiddleware:
    """Outermost middleware: counts what the whole request did (gunicorn sync workers run one at a time), and runs
    it at the stack depth the request names."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        queries = 0

        def count(execute, sql, params, many, context):
            nonlocal queries
            queries += 1
            return execute(sql, params, many, context)

        connects_before = _connects
        with connection.execute_wrapper(count):
            response = padded(_depth(request), lambda: self.get_response(request))
        response["X-Bench-Queries"] = str(queries)
        response["X-Bench-Connects"] = str(_connects - connects_before)
        return response
