"""Record vendor deliveries and process them, once, by id.

The webhook views, the replay command, the admin replay action and queue
workers all run a delivery through the same attempt. The rules:

* a delivery already processed or ignored changes nothing;
* a failed one is processed again (attempts + 1): a vendor retry heals it;
* an attempt holds a **lease** on the delivery (``lease_until``, its owner and
  token), taken and committed before the handler runs: while it lasts no other
  attempt starts (a concurrent copy is answered "in progress"), and the
  outcome is recorded only by the attempt whose token still holds the lease;
* a lease that runs out with no outcome is a lost attempt (worker killed,
  database connection dropped): it stays counted, the delivery becomes
  ``failed`` with an error naming the lost owner, and the next attempt takes
  over. Queue mode always has that next attempt queued (``orgbilling.tasks``);
* the handler runs outside any transaction of ours, so it may call a vendor
  between its own short transactions (no row lock is held across a call);
  each handler is idempotent, so running an event again is safe;
* on error the delivery keeps status ``failed`` with the error text.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from . import conf
from .models import WebhookDelivery

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status
LEASE_FIELDS = ["lease_until", "lease_owner", "lease_token"]


class Ignored(Exception):
    """Raised by a handler when an event is valid but has nothing to apply (the reason is kept)."""


class NeedsVendorCall(Exception):
    """Raised by a handler running inside its caller's transaction (``local_deliveries``) when the event turns out
    to need a vendor call: the attempt is undone and left to the lease path, which commits before calling."""


# Set while a handler runs inside its caller's transaction (``local_deliveries``), where no vendor may be called.
_in_callers_transaction: ContextVar[bool] = ContextVar("orgbilling_in_callers_transaction", default=False)


def may_call_vendor() -> bool:
    """False inside ``in_callers_transaction``: a handler that needs a vendor call raises ``NeedsVendorCall``."""
    return not _in_callers_transaction.get()


@contextmanager
def in_callers_transaction() -> Iterator[None]:
    token = _in_callers_transaction.set(True)
    try:
        yield
    finally:
        _in_callers_transaction.reset(token)


class Incomplete(Exception):
    """Raised by a handler that made progress but left the rest to the next attempt (its time ran out)."""


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
    in_progress: bool = False  # another attempt holds the lease; nothing was done
    needs_lease: bool = False  # the handler needs a vendor call: undone, for the lease path to run
    incomplete: bool = False  # progress was made; the next attempt goes on

    @property
    def failed(self) -> bool:
        return self.status == Status.FAILED and not self.in_progress


@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    token: str


# Called with the locked delivery and the outcome before it is saved (queue mode schedules the next task).
FinishHook = Callable[[WebhookDelivery, Outcome], None]


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


def this_process() -> str:
    """The lease owner named for an attempt run in a web or command process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def needing_replay(now: datetime | None = None) -> QuerySet[WebhookDelivery]:
    """Failed deliveries, and those whose attempt was lost without anyone noticing yet."""
    lost = Q(status=Status.RECEIVED, lease_until__lte=now or timezone.now())
    return WebhookDelivery.objects.filter(Q(status=Status.FAILED) | lost)


def note_lost(delivery: WebhookDelivery, now: datetime) -> bool:
    """If the delivery's last attempt was lost (its lease ran out), record it as failed and say so."""
    if delivery.is_done or delivery.lease_until is None or delivery.leased(now):
        return False
    owner = delivery.lease_owner or "an unknown process"
    delivery.status = Status.FAILED
    delivery.last_error = (
        f"lost: attempt {delivery.attempts} by worker {owner} did not finish "
        f"by {delivery.lease_until.isoformat(timespec='seconds')} (killed, or its database connection dropped)"
    )
    delivery.lease_until, delivery.lease_owner, delivery.lease_token = None, "", ""
    logger.warning("delivery %s %s: %s", delivery.vendor, delivery.event_id, delivery.last_error)
    return True


def begin_attempt(delivery: WebhookDelivery, *, owner: str, token: str, now: datetime) -> None:
    """Start an attempt on a delivery whose row the caller holds locked: count it and take the lease."""
    delivery.attempts += 1
    delivery.lease_until = now + timedelta(seconds=conf.get("ORGBILLING_QUEUE_LEASE"))
    delivery.lease_owner, delivery.lease_token = owner[:100], token
    delivery.save(update_fields=["attempts", "status", "last_error", *LEASE_FIELDS])


def process_delivery(delivery_id: int, *, owner: str = "") -> Outcome:
    """Run one attempt of a recorded delivery now (webhook in inline mode, replay), following the rules above."""
    token = uuid.uuid4().hex
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.is_done:
            return Outcome(delivery.status, already_done=True)
        now = timezone.now()
        if delivery.leased(now):
            return Outcome(delivery.status, in_progress=True)
        note_lost(delivery, now)
        begin_attempt(delivery, owner=owner or this_process(), token=token, now=now)
    return run_attempt(Attempt(delivery_id, token))


def apply_event(
    vendor: str, event: dict, *, event_id: str, within: Callable[[], ContextManager[Any]] = nullcontext
) -> Outcome:
    """Run the vendor's handler on an event (inside ``within``, e.g. a savepoint); its exception is the outcome."""
    try:
        with within():
            import_string(HANDLERS[vendor])(event)
    except Ignored as reason:
        return Outcome(Status.IGNORED, str(reason))
    except NeedsVendorCall:
        return Outcome(Status.RECEIVED, needs_lease=True)
    except Incomplete as progress:
        return Outcome(Status.FAILED, f"incomplete: {progress}", incomplete=True)
    except Exception as exc:  # noqa: BLE001  kept on the delivery, reported as failed
        logger.warning("delivery %s %s failed: %s", vendor, event_id, exc)
        return Outcome(Status.FAILED, f"{type(exc).__name__}: {exc}")
    return Outcome(Status.PROCESSED)


def run_attempt(attempt: Attempt, on_finish: FinishHook | None = None) -> Outcome:
    """Apply the delivery through its vendor's handler, then record the outcome if the lease is still ours."""
    delivery = WebhookDelivery.objects.get(pk=attempt.delivery_id)
    outcome = apply_event(delivery.vendor, json.loads(delivery.body), event_id=delivery.event_id)
    return _finish(attempt, outcome, on_finish)


def _finish(attempt: Attempt, outcome: Outcome, on_finish: FinishHook | None) -> Outcome:
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=attempt.delivery_id)
        if delivery.lease_token != attempt.token:
            # Our lease ran out and another attempt took over: its outcome is the one that counts.
            logger.warning("delivery %s %s: an attempt outlived its lease", delivery.vendor, delivery.event_id)
            return Outcome(delivery.status, in_progress=True)
        delivery.status, delivery.last_error = outcome.status, outcome.error
        if not outcome.failed:
            delivery.processed_at = timezone.now()
        delivery.lease_until, delivery.lease_owner, delivery.lease_token = None, "", ""
        if on_finish is not None:
            on_finish(delivery, outcome)
        delivery.save(
            update_fields=["status", "last_error", "processed_at", "next_attempt_at", "task_id", *LEASE_FIELDS]
        )
    return outcome
