"""Log formatters: one JSON object per line, or plain lines; neither lets a value from a request forge a line.

Request and webhook logs name what happened (method, matched URL pattern,
status, request id, vendor, event type and id, organization) and never carry
headers, tokens, Basic Auth credentials, query strings or payloads: the JSON
formatter writes the message and a fixed list of ``extra=`` fields, nothing
else a caller happens to attach.

Values from a request still reach messages (a token's ``kid`` in a refusal, a
method), so the plain formatter escapes control characters (``\\n`` becomes
the two characters ``\\`` ``n``) and indents every line of a traceback: a line
that starts at column 0 is always a record of its own. JSON escapes them anyway.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

FIELDS = (
    "method",
    "route",
    "status",
    "duration_ms",
    "request_id",
    "exception_type",
    "organization",
    "vendor",
    "event_type",
    "event_id",
    "outcome",
)
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its Python escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    """``logging.Formatter`` whose records each stay on their own line, whatever a message holds."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  (logging's naming)
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei) -> str:  # noqa: N802
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return _indented(stack_info)


def _indented(text: str) -> str:
    """Every line of a traceback escaped and indented, so none can pass for a record."""
    return "\n".join(f"    {escape_controls(line)}" for line in text.splitlines())
