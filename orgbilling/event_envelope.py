"""The checks every vendor's webhook body gets before its own: UTF-8 JSON, an object, short string ids.

Each vendor module passes its own ``MalformedEvent`` so the view can answer
400 with the reason, whichever vendor sent the body.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .json_input import InvalidJson, loads

MAX_KEY_LENGTH = 255  # the delivery log's event_id and event_type columns


def storable(value: Any, max_length: int) -> bool:
    """A string a text column can hold: PostgreSQL refuses NUL characters, and columns have a length."""
    return isinstance(value, str) and len(value) <= max_length and "\x00" not in value


def decode(body: bytes, error: type[ValueError]) -> Any:
    """The JSON value of a raw body, read by the bounded reader; ``error`` with its reason when refused."""
    try:
        return loads(body)
    except InvalidJson as exc:
        raise error(exc.message) from None


def envelope(event: Any, keys: Iterable[str], error: type[ValueError]) -> dict:
    """``event`` itself once it is an object whose ``keys`` are non-blank strings of at most 255 characters."""
    if not isinstance(event, dict):
        raise error("body is not a JSON object")
    for key in keys:
        if not storable(event.get(key), MAX_KEY_LENGTH) or not event[key].strip():
            raise error(f"event {key} is missing or not a short string")
    return event
