"""The one reader for JSON that arrives from outside: webhook bodies, API bodies, JSON strings inside them.

``json.loads`` alone recurses once per nesting level (100,000 brackets end in a
``RecursionError``, a 500 that vendors then retry), reads ``NaN`` and
``Infinity``, and turns ``1e400`` into infinity. Here:

* nesting deeper than ``MAX_DEPTH`` is refused by a scan that runs before the
  parser and counts levels without recursion, so depth costs no stack;
* ``NaN``, ``Infinity``, floats that overflow and integers beyond 64 bits (no
  database column or vendor id holds them) are refused while parsing;
* anything else that is not UTF-8 JSON is refused too.

Every refusal is ``InvalidJson``: a ``BillingProblem`` (the JSON API decorator
answers 400 with its message) and a Django ``BadRequest`` (any other view that
lets it escape answers 400 as well), raised before anything is written.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from django.core.exceptions import BadRequest
from django.http import HttpRequest

from .errors import BillingProblem

MAX_DEPTH = 64
MAX_INTEGER = 2**63 - 1  # a signed 64-bit column
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")
_DEPTH_STEP = [{ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(byte, 0) for byte in range(256)]
_NOT_GIVEN: Any = object()


class InvalidJson(BillingProblem, BadRequest):
    """The text is not JSON orgbilling reads; the message says why (answered with 400)."""


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` before parsing, with no recursion and no Python-level loop.

    Strings go first (their brackets are text), then every other character;
    the running sum of +1 per opening and -1 per closing bracket is the depth.
    """
    brackets = _STRING.sub("", text).encode("ascii", "ignore").translate(None, _NOT_A_BRACKET)
    if brackets and max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))) > MAX_DEPTH:
        raise InvalidJson(f"JSON nested deeper than {MAX_DEPTH} levels")


def _constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a number JSON allows")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJson("a number is out of range")
    return value


def _int(text: str) -> int:
    if len(text) > 20:  # longer than any 64-bit integer, and int() of a huge string is slow
        raise InvalidJson("a number is out of range")
    value = int(text)
    if abs(value) > MAX_INTEGER:
        raise InvalidJson("a number is out of range")
    return value


def loads(data: bytes | str) -> Any:
    """The JSON value of ``data``, or ``InvalidJson``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise InvalidJson("body is not UTF-8 JSON") from None
    _check_depth(text)
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except InvalidJson:
        raise
    except ValueError:
        raise InvalidJson("body is not UTF-8 JSON") from None


def read_json(request: HttpRequest, *, empty: Any = _NOT_GIVEN) -> Any:
    """The JSON value of ``request``'s body (``empty`` for an empty body, when given), or ``InvalidJson``.

    Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bounds the body's size (a larger one is a 400 too).
    """
    body = request.body
    if not body and empty is not _NOT_GIVEN:
        return empty
    return loads(body)


def read_json_object(request: HttpRequest) -> dict[str, Any]:
    """Like ``read_json``, for APIs whose body is an object (an empty body reads as ``{}``)."""
    value = read_json(request, empty={})
    if not isinstance(value, dict):
        raise InvalidJson("The body must be a JSON object.")
    return value
