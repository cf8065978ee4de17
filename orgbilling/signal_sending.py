"""Sending orgbilling's signals once the transaction commits, so a rolled-back write sends nothing."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)


def send_after_commit(signal: Signal, sender: type, **kwargs: Any) -> None:
    """Send ``signal`` on commit; a failing receiver is logged, not raised (the commit cannot be undone)."""

    def send() -> None:
        for receiver, response in signal.send_robust(sender=sender, **kwargs):
            if isinstance(response, Exception):
                logger.error("signal receiver %r failed", receiver, exc_info=response)

    transaction.on_commit(send)
