"""The seat cap Scalekit enforces, set from what the organization bought in Chargebee.

* **Where the limit comes from**: the sum of the plan-item quantities of the
  organization's entitling subscriptions (a flat-fee plan, whose item has no
  quantity, counts its ``ORGBILLING_PLANS`` ``max_seats``); with none,
  ``ORGBILLING_SEATS_WITHOUT_SUBSCRIPTION`` (None: no cap).
* **Durable**: ``refresh_limit`` runs in the transaction that changed a
  subscription, holding the organization's row lock; it stores the wanted
  limit (a new ``seat_limit_version``, status ``pending``) and sends it after
  commit. A send that cannot finish leaves the limit ``pending``: queue mode
  retries it with backoff (``seat_tasks``) and ``orgbilling_sync``'s seat pass
  sends every pending limit, so a process dying after commit loses nothing.
  A 400 or 404 marks the limit ``rejected`` with Scalekit's reason.
* **Converges**: a send reads the stored limit without a lock, sends it, then
  looks again; if the wanted limit moved meanwhile, its PATCH may have landed
  after a newer one, so it sends the current limit again. The last PATCH to
  land is therefore always followed by a check that it carried the wanted value.
"""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from . import conf, directory_seats, plans, signals
from .models import ENTITLING_STATUSES, Organization, SeatLimitStatus, Subscription
from .scalekit_management import ScalekitError, ScalekitManagement, configured, get_client

logger = logging.getLogger(__name__)

NO_LIMIT = 0  # what Scalekit's max_allowed_users calls "no limit"
REJECTED_STATUSES = (400, 404)
MAX_RESENDS = 5  # sends in one call when the wanted limit keeps moving; the rest is left to a retry


# What ``wanted_limit`` reads of each subscription row.
SEAT_COLUMNS = ("status", "plan_id", "seats", "items", "deleted_at")


def seat_terms(subscription: Subscription) -> tuple:
    """The columns of a subscription row the limit is computed from."""
    return tuple(getattr(subscription, name) for name in SEAT_COLUMNS)


def refresh_after_write(organization: Organization, before: tuple | None, subscription: Subscription) -> bool:
    """``refresh_limit``, unless the write left the limit's inputs alone and the limit was set already.

    ``before`` is the row's ``seat_terms`` before the write (None for a new row). Most events (a renewal) then
    cost no read of the organization's subscriptions; a limit moved by a setting or catalog change alone is
    the seat pass's to store (``orgbilling_sync --seats``).
    """
    if before == seat_terms(subscription) and organization.seat_limit_status != SeatLimitStatus.UNSET:
        return False
    return refresh_limit(organization)


def wanted_limit(organization: Organization) -> int | None:
    """The cap the organization's subscriptions buy right now; None for no cap."""
    # Only the three columns read: this runs in every subscription write, and whole rows cost the ORM far more.
    subscriptions = organization.subscriptions.filter(status__in=ENTITLING_STATUSES, deleted_at__isnull=True)
    columns = subscriptions.values_list("items", "plan_id", "seats")
    items = [item for listed, plan_id, seats in columns for item in _plan_items(listed, plan_id, seats)]
    if not items:
        return conf.get("ORGBILLING_SEATS_WITHOUT_SUBSCRIPTION")
    total = 0
    for item in items:
        if item.get("quantity") is not None:
            total += item["quantity"]
            continue
        plan = plans.find(item.get("item_price_id") or "")
        if plan is None:  # a flat-fee plan the catalog does not name: never lock anyone out
            return None
        total += plan.max_seats
    return total


def _plan_items(items: list[dict] | None, plan_id: str, seats: int) -> list[dict]:
    """A subscription's plan items (a row never synced has none listed: its plan and seats stand in)."""
    items = items or [{"item_type": "plan", "item_price_id": plan_id, "quantity": seats}]
    return [item for item in items if item.get("item_type") == "plan"]


def refresh_limit(organization: Organization) -> bool:
    """Store the organization's wanted limit if it changed, and send it once the transaction commits.

    Call it inside the transaction holding the organization's row lock, with
    the row read under that lock (the caller's change and the wanted limit
    commit together). Nothing is stored
    or sent for a deleted organization, or when the limit did not change (a
    duplicate or stale event). Returns True when the limit changed.
    """
    if organization.is_deleted:
        return False
    limit = wanted_limit(organization)
    never_set = organization.seat_limit_status == SeatLimitStatus.UNSET
    if limit == organization.seat_limit and not (never_set and limit is not None):
        return False
    previous = None if never_set else organization.seat_limit
    organization.seat_limit, organization.seat_limit_status = limit, SeatLimitStatus.PENDING
    organization.seat_limit_version += 1
    organization.seat_limit_error = ""
    organization.save(update_fields=["seat_limit", "seat_limit_status", "seat_limit_version", "seat_limit_error"])
    directory_seats.seats_changed(organization)
    transaction.on_commit(partial(_announce, organization.pk, limit, previous))
    transaction.on_commit(partial(schedule_send, organization.pk))
    return True


def _announce(organization_id: str, limit: int | None, previous: int | None) -> None:
    organization = Organization.objects.get(pk=organization_id)
    if organization.is_deleted:  # deleted in the same transaction: nothing changes for anyone
        return
    for receiver, response in signals.seat_limit_changed.send_robust(
        sender=Organization, organization=organization, limit=limit, previous=previous
    ):
        if isinstance(response, Exception):
            logger.error("seat_limit_changed receiver %r failed for %s", receiver, organization_id, exc_info=response)


def schedule_send(organization_id: str) -> None:
    """Send the stored limit now (inline) or through a task (queue mode); call it outside transactions.

    Without Scalekit credentials the limit only waits, pending, for ``orgbilling_sync``.
    """
    if not configured():
        return
    if conf.get("ORGBILLING_PROCESSING") == "queue":
        from .seat_tasks import send_seat_limit

        send_seat_limit.enqueue(organization_id, 1)
        return
    send_limit(organization_id)


def send_limit(organization_id: str, client: ScalekitManagement | None = None) -> str:
    """Send the organization's wanted limit until Scalekit holds it; returns the limit's status afterwards.

    ``pending`` means it should be tried again later (Scalekit unreachable,
    or the limit kept moving). Never call it inside a transaction.
    """
    for _ in range(MAX_RESENDS):
        organization = Organization.objects.filter(pk=organization_id).first()
        if organization is None or organization.is_deleted or organization.seat_limit_status == SeatLimitStatus.UNSET:
            return SeatLimitStatus.UNSET
        if organization.seat_limit_status == SeatLimitStatus.REJECTED:
            return SeatLimitStatus.REJECTED
        sent, version = organization.seat_limit, organization.seat_limit_version
        try:
            (client or get_client()).set_max_allowed_users(organization_id, NO_LIMIT if sent is None else sent)
        except ScalekitError as error:
            return _failed(organization_id, version, error)
        if _confirm(organization_id, sent):
            return SeatLimitStatus.CONFIRMED
        # The wanted limit moved while this PATCH was on its way: it may have landed after a newer one.
    return SeatLimitStatus.PENDING


def _confirm(organization_id: str, sent: int | None) -> bool:
    """Mark the limit confirmed if the value just sent is still the wanted one (whatever its version)."""
    with transaction.atomic():
        organization = Organization.objects.locked().get(pk=organization_id)
        if organization.seat_limit != sent or organization.is_deleted:
            return organization.is_deleted
        organization.seat_limit_status = SeatLimitStatus.CONFIRMED
        organization.seat_limit_confirmed_at = timezone.now()
        organization.seat_limit_error = ""
        organization.save(update_fields=["seat_limit_status", "seat_limit_confirmed_at", "seat_limit_error"])
        return True


def _failed(organization_id: str, version: int, error: ScalekitError) -> str:
    rejected = error.http_status in REJECTED_STATUSES
    status = SeatLimitStatus.REJECTED if rejected else SeatLimitStatus.PENDING
    logger.warning("seat limit of %s not set: %s", organization_id, error)
    # Only the version that failed: a newer wanted limit has its own send coming.
    Organization.objects.filter(pk=organization_id, seat_limit_version=version).update(
        seat_limit_status=status, seat_limit_error=str(error)[:255]
    )
    return status


def send_pending(client: ScalekitManagement | None = None) -> dict[str, str]:
    """Send every pending limit (``orgbilling_sync``); returns each organization's status afterwards."""
    pending = Organization.objects.filter(seat_limit_status=SeatLimitStatus.PENDING, deleted_at__isnull=True)
    return {org_id: send_limit(org_id, client) for org_id in pending.values_list("pk", flat=True)}
