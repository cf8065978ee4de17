"""Record vendor deliveries and process them, once, by id.

The webhook views, the replay command, the admin replay action and queue
workers all call ``process_delivery``; only the per-vendor handlers differ.
The rules:

* a delivery already processed or ignored changes nothing;
* a failed one is processed again (attempts + 1): a vendor retry heals it;
* processing runs in one transaction: on error the domain writes roll back
  and the delivery keeps status ``failed`` with the error text;
* concurrent copies of one event are serialized on the delivery row lock
  (``SELECT ... FOR UPDATE``; SQLite takes its write lock at BEGIN IMMEDIATE),
  so the second copy sees the first one's outcome instead of applying it again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import WebhookDelivery

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status


class Ignored(Exception):
    """Raised by a handler when an event is valid but has nothing to apply (the reason is kept)."""


# The function that applies one vendor's event payload (imported lazily: they import this module).
HANDLERS = {
    WebhookDelivery.Vendor.SCALEKIT: "orgbilling.scalekit_events.handle_event",
    WebhookDelivery.Vendor.CHARGEBEE: "orgbilling.chargebee_events.handle_event",
}


@dataclass(frozen=True)
class Outcome:
    status: str
    error: str = ""
    already_done: bool = False

    @property
    def failed(self) -> bool:
        return self.status == Status.FAILED


def record_delivery(vendor: str, event_id: str, event_type: str, body: str) -> WebhookDelivery:
    """Store a delivery unless its event id is already recorded; return the stored row.

    The unique (vendor, event_id) constraint decides, not a check-then-insert,
    so two copies arriving together yield one row.
    """
    try:
        with transaction.atomic():
            return WebhookDelivery.objects.create(vendor=vendor, event_id=event_id, event_type=event_type, body=body)
    except IntegrityError:
        return WebhookDelivery.objects.get(vendor=vendor, event_id=event_id)


def process_delivery(delivery_id: int) -> Outcome:
    """Apply a recorded delivery through its vendor's handler, following the rules above."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.is_done:
            return Outcome(delivery.status, already_done=True)
        delivery.attempts += 1
        delivery.next_attempt_at = None  # this attempt is the one that was scheduled, if any
        try:
            with transaction.atomic():  # savepoint: a failure undoes only the domain writes
                import_string(HANDLERS[delivery.vendor])(json.loads(delivery.body))
        except Ignored as reason:
            delivery.status, delivery.last_error = Status.IGNORED, str(reason)
        except Exception as exc:  # noqa: BLE001  kept on the delivery, reported as failed
            logger.warning("delivery %s %s failed: %s", delivery.vendor, delivery.event_id, exc)
            delivery.status, delivery.last_error = Status.FAILED, f"{type(exc).__name__}: {exc}"
        else:
            delivery.status, delivery.last_error = Status.PROCESSED, ""
        if delivery.status != Status.FAILED:
            delivery.processed_at = timezone.now()
        delivery.save(update_fields=["status", "last_error", "attempts", "processed_at", "next_attempt_at"])
    return Outcome(delivery.status, delivery.last_error if delivery.status == Status.FAILED else "")
