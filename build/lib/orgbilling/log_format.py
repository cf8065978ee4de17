"""One JSON object per log line, with only fields chosen on purpose.

Request and webhook logs name what happened (method, path, status, vendor,
event type and id, organization) and never carry headers, tokens, Basic Auth
credentials or payloads: the formatter writes the message and a fixed list of
``extra=`` fields, nothing else a caller happens to attach.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

FIELDS = ("method", "path", "status", "duration_ms", "organization", "vendor", "event_type", "event_id", "outcome")


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
