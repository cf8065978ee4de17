"""Deliveries whose handling calls no vendor: recorded and applied in one transaction, with one commit.

A Chargebee subscription event carries the whole subscription, so applying it
only writes local rows. Such an event skips the lease of ``deliveries`` (whose
point is to let a handler call a vendor with no row lock held): inline, the
webhook records and applies it in one transaction; in queue mode, the worker
applies it inside ``db_worker``'s claim transaction (``tasks.begin_claimed``).
The delivery log keeps its guarantees:

* **unique per event**: the row is inserted in the transaction that made the
  writes, after them (inline on PostgreSQL, in one statement with the last of
  them: ``compiled_queries.holding_update``). A copy already recorded, or being
  recorded by a concurrent copy (the unique constraint makes this insert wait
  for it), fails the insert; the whole transaction rolls back and the copy
  takes the lease path, which finds the delivery done, leased or failed;
* **no double apply**: the writes commit with the row saying they were made,
  or not at all; the ``resource_version`` guard orders the rest;
* **a failure kept for retry**: when the handler fails, its writes are rolled
  back and the row is then inserted ``failed`` with the error, for the vendor's
  retry or a replay. In the webhook that insert is a statement of its own after
  the rollback (a savepoint would cost two round trips on every success; a
  crash between the two leaves the delivery unanswered, so the vendor sends it
  again); in a worker's claim the handler runs in a savepoint and the failure
  is kept in the claim's commit, with its retry queued.

Nothing of the attempt outlives the transaction, so there is nothing to
lease: a process killed before the commit leaves no row, the vendor gets no
answer and sends the delivery again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import chargebee_events, compiled_queries, deliveries
from .models import WebhookDelivery


def applies_locally(vendor: str, event_type: str) -> bool:
    """Whether this event's handler writes local rows only (no vendor call), so it may run under row locks."""
    return vendor == WebhookDelivery.Vendor.CHARGEBEE and chargebee_events.calls_no_vendor(event_type)


@contextmanager
def _savepoint() -> Iterator[None]:
    with deliveries.in_callers_transaction(), transaction.atomic():
        yield


def apply(delivery: WebhookDelivery, event: dict, *, savepoint: bool = True) -> deliveries.Outcome:
    """One attempt inside the caller's transaction: the handler in a savepoint, the outcome set on ``delivery``.

    The caller saves the row in the same transaction. An event that turns out to need a vendor call (a
    subscription of a deleted organization) is undone and ``needs_lease``, ``delivery`` untouched. Without
    ``savepoint`` nothing is undone: the caller undoes the batch (``apply_together``).
    """
    within = _savepoint if savepoint else deliveries.in_callers_transaction
    outcome = deliveries.apply_event(delivery.vendor, event, event_id=delivery.event_id, within=within)
    if outcome.needs_lease:
        return outcome
    delivery.attempts += 1
    delivery.status, delivery.last_error = outcome.status, outcome.error
    if not outcome.failed:
        delivery.processed_at = timezone.now()
    return outcome


class _Undo(Exception):
    """A delivery of a batch applied together failed or needs a vendor call: the batch is undone."""


def apply_batch(batch: list[tuple[WebhookDelivery, dict]]) -> list[deliveries.Outcome]:
    """Apply each delivery of a batch: all in one savepoint unless one fails, else each in its own."""
    return (len(batch) > 1 and apply_together(batch)) or [apply(delivery, event) for delivery, event in batch]


def apply_together(batch: list[tuple[WebhookDelivery, dict]]) -> list[deliveries.Outcome] | None:
    """Apply a batch in one savepoint, not one each: two statements a batch instead of two a delivery.

    Only when every delivery is processed or ignored. A failure, or an event that needs a vendor call, undoes
    the whole savepoint, puts the deliveries back as they were and returns None, and the caller applies each
    in its own savepoint. A savepoint released after each success leaves what this leaves; an ignored event
    keeps what its handler wrote before ignoring it (a stale subscription's newer customer), as the inline
    webhook keeps it.
    """
    before = [(delivery.attempts, delivery.status, delivery.last_error, delivery.processed_at) for delivery, _ in batch]
    outcomes = []
    try:
        with transaction.atomic():
            for delivery, event in batch:
                outcomes.append(apply(delivery, event, savepoint=False))
                if outcomes[-1].status not in (deliveries.Status.PROCESSED, deliveries.Status.IGNORED):
                    raise _Undo
    except _Undo:
        for (delivery, _), fields in zip(batch, before, strict=True):
            delivery.attempts, delivery.status, delivery.last_error, delivery.processed_at = fields
        return None
    return outcomes


def record_and_apply(vendor: str, event_id: str, event_type: str, body: str, event: dict) -> deliveries.Outcome | None:
    """Apply a new event and record its delivery with the outcome, in one commit.

    None, with nothing written, when the event is already recorded or turns out to need a vendor call:
    the caller runs it through ``deliveries.process_delivery``.
    """
    try:
        # The subscription's UPDATE and the delivery's INSERT in one statement, where the database allows it.
        with transaction.atomic(), compiled_queries.holding_update():
            outcome = deliveries.apply_event(vendor, event, event_id=event_id, within=deliveries.in_callers_transaction)
            if outcome.failed or outcome.needs_lease:
                transaction.set_rollback(True)  # the handler's writes go
            else:
                _recorded(vendor, event_id, event_type, body, outcome)
        if outcome.needs_lease:
            return None
        if outcome.failed:
            # On its own: a crash just before it leaves the delivery unanswered, so the vendor sends it again.
            _recorded(vendor, event_id, event_type, body, outcome)
    except IntegrityError:
        return None
    return outcome


def _recorded(vendor: str, event_id: str, event_type: str, body: str, outcome: deliveries.Outcome) -> None:
    delivery = WebhookDelivery(vendor=vendor, event_id=event_id, event_type=event_type, body=body, attempts=1)
    delivery.status, delivery.last_error = outcome.status, outcome.error
    if not outcome.failed:
        delivery.processed_at = timezone.now()
    compiled_queries.insert(delivery)  # its INSERT built once
