"""Replay recorded deliveries through the same code a live webhook runs."""

from __future__ import annotations

from collections.abc import Iterable

from .deliveries import Outcome, process_delivery
from .models import WebhookDelivery


def replay(deliveries: Iterable[WebhookDelivery]) -> list[tuple[WebhookDelivery, Outcome]]:
    """Process each delivery again, oldest first; processed and ignored ones are left as they are."""
    ordered = sorted(deliveries, key=lambda d: (d.received_at, d.pk))
    return [(delivery, process_delivery(delivery.pk)) for delivery in ordered]
