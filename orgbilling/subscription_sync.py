"""The one write path for subscription state: apply a Chargebee snapshot to its local row.

Webhooks, the checkout redirect, the portal return, reconciliation and the
organization deletion all call ``apply_subscription`` with the subscription
JSON Chargebee gave them, so every rule lives here once:

* **Matching**, in this order: the local id sent as the Chargebee id; the
  linked ``chargebee_subscription_id``; ``meta_data.subscriptionId`` on the
  subscription; ``meta_data.pendingSubscriptionId`` on the customer; the
  organization's checkout row not linked yet. A snapshot of a known
  organization that matches nothing gets a new row.
* **One row per Chargebee subscription**: the organization row is locked
  (``SELECT ... FOR UPDATE``) before matching, so concurrent snapshots of one
  subscription queue there and the second sees the row the first wrote; the
  unique ``chargebee_subscription_id`` is the backstop.
* **Ordering**: a snapshot is applied only if its ``resource_version`` is
  newer than the stored one, whole (never field by field). One of the same
  version is applied too when a mirrored field differs ("repaired"): the row
  was changed locally (a local cancellation keeps the version), and
  Chargebee's copy is the truth.
* **Deleted organizations**: a live subscription of a deleted organization
  is marked ``cancel_reason = organization_deleted`` here (the intent,
  committed with the row); ``deleted_org_cancellation`` then cancels it in
  Chargebee with a full refund, after the commit.
* **Signals** (see ``signals.py``) are queued on commit from the state
  transition, so they fire once whichever path saw the change first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.dispatch import Signal
from django.utils import timezone

from . import compiled_queries, renewal_estimates, seat_limits, signals
from .chargebee_snapshot import CLOSED_STATUSES, MAX_VERSION, SubscriptionSnapshot, meta_value
from .compiled_queries import CompiledQuery
from .customer_profile import apply_customer
from .models import CancelReason, Invoice, Organization, Subscription, new_subscription_id

logger = logging.getLogger(__name__)

Status = Subscription.Status
PAID_STATUSES = (Status.ACTIVE, Status.NON_RENEWING)
# The fields that make a change worth a signal (not the ordering guard or the link).
TRACKED_FIELDS = (
    "status",
    "plan_id",
    "seats",
    "items",
    "trial_start",
    "trial_end",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "cancelled_at",
    "deleted_at",
    "has_scheduled_changes",
)


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply_subscription`` did; ``reason`` is created, updated, repaired, stale or unknown customer."""

    subscription: Subscription | None
    applied: bool
    created: bool = False
    reason: str = ""
    previous_status: str | None = None

    @property
    def cancel_pending(self) -> bool:
        """The row belongs to a deleted organization and Chargebee still bills it: cancel it now."""
        return self.subscription is not None and awaits_refund_cancel(self.subscription)


def awaits_refund_cancel(row: Subscription) -> bool:
    return row.cancel_reason == CancelReason.ORGANIZATION_DELETED and row.status not in CLOSED_STATUSES


def customer_version(customer: dict | None) -> int | None:
    """The customer's ``resource_version``, or None when absent or not a storable integer."""
    version = (customer or {}).get("resource_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_VERSION:
        return None
    return version


def note_customer_version(organization_id: str, customer: dict | None) -> bool:
    """Remember the resource_version of the organization's Chargebee customer when it is newer.

    One conditional UPDATE, so concurrent callers need no lock; only the
    customer the organization is mapped to counts, and never a deleted one.
    """
    version = customer_version(customer)
    if version is None or customer.get("deleted") is True:
        return False
    newer = Q(chargebee_customer_version__isnull=True) | Q(chargebee_customer_version__lt=version)
    organizations = Organization.objects.filter(newer, pk=organization_id, chargebee_customer_id=customer.get("id"))
    return organizations.update(chargebee_customer_version=version) > 0


def find_organization(customer_id: str, customer: dict | None = None, *, lock: bool = False) -> Organization | None:
    """The organization billed through this Chargebee customer (its row locked with ``lock``).

    The stored customer mapping decides; failing that, the ``organizationId``
    our checkout wrote into the customer's meta_data, unless that
    organization is already mapped to another customer.
    """
    organizations = _organizations(lock)
    organization = _BY_CUSTOMER[lock].first(customer_id)
    if organization is None and customer:
        organization_id = meta_value(customer.get("meta_data"), "organizationId")
        if isinstance(organization_id, str):
            organization = (
                organizations.filter(pk=organization_id)
                .filter(Q(chargebee_customer_id__isnull=True) | Q(chargebee_customer_id=customer_id))
                .first()
            )
    return organization


def _organizations(lock: bool) -> QuerySet[Organization]:
    return Organization.objects.locked() if lock else Organization.objects.all()


def _subscriptions(lock: bool) -> QuerySet[Subscription]:
    return Subscription.objects.locked() if lock else Subscription.objects.all()


def _linkable(subscription_id: str, organization_id: str | None = None) -> Q:
    """A row reached through an id must be unlinked or linked to this very subscription, and
    belong to the customer's organization when that one is known."""
    linkable = Q(chargebee_subscription_id__isnull=True) | Q(chargebee_subscription_id=subscription_id)
    return linkable if organization_id is None else linkable & Q(organization_id=organization_id)


def _by_customer(lock: bool) -> CompiledQuery:
    return CompiledQuery(lambda customer_id: _organizations(lock).filter(chargebee_customer_id=customer_id))


def _by_id(lock: bool) -> CompiledQuery:
    """Matching step 1, the subscription's own id: ``(subscription_id)`` or ``(subscription_id, organization_id)``."""

    def build(*ids: str) -> QuerySet[Subscription]:
        return _subscriptions(lock).filter(_linkable(*ids), pk=ids[0]).order_by("-created_at")

    return CompiledQuery(build)


def _with_organization() -> CompiledQuery:
    """Matching step 1 and the customer's organization in one read: ``(customer_id, subscription_id)``.

    Both rows locked in one statement, the organization first (``of``'s order is the order PostgreSQL locks
    in), as every other write path locks them: no lock cycle with those.
    """

    def build(customer_id: str, subscription_id: str) -> QuerySet[Subscription]:
        rows = Subscription.objects.locked(of=("organization", "self")).select_related("organization")
        customer = Q(organization__chargebee_customer_id=customer_id)
        return rows.filter(_linkable(subscription_id), customer, pk=subscription_id)

    return CompiledQuery(build)


# The write path's reads of every event, built once (compiled_queries); step 1 finds nearly every row,
# with its organization, in one statement (_WITH_ORGANIZATION); the others are for the rest.
# One query per shape: with the organization known, step 1 takes its id too.
_WITH_ORGANIZATION = _with_organization()
_BY_CUSTOMER = {lock: _by_customer(lock) for lock in (True, False)}
_BY_ID = {(lock, known): _by_id(lock) for lock in (True, False) for known in (True, False)}


def _match(
    snapshot: SubscriptionSnapshot, customer: dict | None, organization: Organization | None, *, lock: bool
) -> Subscription | None:
    """The local row of this snapshot, trying the matching steps in order (module docstring)."""
    known = () if organization is None else (organization.pk,)
    row = _BY_ID[(lock, bool(known))].first(snapshot.id, *known)
    if row is not None:
        return row
    rows = _subscriptions(lock)
    # The customer-wide steps (4, 5) skip deleted rows: those stay with the subscription they were (steps 1 and 3).
    linkable = _linkable(snapshot.id, *known)
    pending = meta_value((customer or {}).get("meta_data"), "pendingSubscriptionId")
    live = Q(deleted_at__isnull=True)
    # Built one at a time: the first step found nothing, so the rest are rare.
    steps = (
        lambda: rows.filter(chargebee_subscription_id=snapshot.id),
        lambda: rows.filter(linkable, pk=snapshot.local_id) if snapshot.local_id else None,
        lambda: rows.filter(linkable, live, pk=pending) if isinstance(pending, str) and pending else None,
        lambda: (
            rows.filter(live, organization=organization, chargebee_subscription_id__isnull=True)
            if organization is not None
            else None
        ),
    )
    for step in steps:
        query = step()
        row = query.order_by("-created_at").first() if query is not None else None
        if row is not None:
            return row
    return None


def _ordering(snapshot: SubscriptionSnapshot, row: Subscription) -> str:
    """The ordering guard: "updated" for a newer ``resource_version``, "repaired" for the same
    version with a mirrored field that differs (Chargebee's copy wins), else "stale"."""
    incoming, stored = snapshot.fields["resource_version"], row.resource_version
    if stored is None or (incoming is not None and incoming > stored):
        return "updated"
    if incoming == stored and _differs(snapshot, row):
        return "repaired"
    return "stale"


def _differs(snapshot: SubscriptionSnapshot, row: Subscription) -> bool:
    if any(getattr(row, name) != value for name, value in snapshot.fields.items()):
        return True
    linked = None if snapshot.deleted else snapshot.id
    return row.chargebee_subscription_id != linked or (row.deleted_at is not None) != snapshot.deleted


def _lifecycle_signals(
    previous_status: str | None, was_deleted: bool, row: Subscription, changed: bool
) -> list[Signal]:
    """The signals a change from ``previous_status`` (None: first seen) to ``row`` stands for."""
    fired = []
    if row.status in PAID_STATUSES and previous_status in (None, Status.FUTURE, Status.IN_TRIAL):
        fired.append(signals.subscription_complete)
    if row.status in CLOSED_STATUSES and previous_status is not None and previous_status not in CLOSED_STATUSES:
        fired.append(signals.subscription_cancelled)
    if row.deleted_at is not None and previous_status is not None and not was_deleted:
        fired.append(signals.subscription_deleted)
    if row.status == Status.IN_TRIAL and previous_status != Status.IN_TRIAL:
        fired.append(signals.trial_started)
    if previous_status == Status.IN_TRIAL and row.status != Status.IN_TRIAL:
        fired.append(signals.trial_ended)
    if changed and previous_status is not None and not fired:
        fired.append(signals.subscription_updated)
    return fired


def _queue_signals(fired: list[Signal], row: Subscription, previous_status: str | None) -> None:
    """Send ``fired`` once the transaction commits; a failing receiver is logged, not raised.

    Raising after the commit could not undo anything and would only turn a
    processed delivery into a 500 that Chargebee retries for nothing.
    """
    if not fired:
        return

    def send() -> None:
        for signal in fired:
            responses = signal.send_robust(
                sender=Subscription, organization=row.organization, subscription=row, previous_status=previous_status
            )
            for receiver, response in responses:
                if isinstance(response, Exception):
                    logger.error("signal receiver %r failed for %s", receiver, row.pk, exc_info=response)

    transaction.on_commit(send)


def _known_status(row: Subscription) -> str | None:
    """The status Chargebee last gave the row; None for a new row or a checkout row never synced.

    So the first real state of a checkout row fires what a new row would
    (``subscription_complete``, ``trial_started``) and nothing else.
    """
    return row.status if row.resource_version is not None else None


def _columns(row: Subscription) -> dict[str, Any]:
    return {field.attname: getattr(row, field.attname) for field in Subscription._meta.concrete_fields}


def _changed_columns(row: Subscription, stored: dict[str, Any]) -> list[str]:
    """The columns whose value differs from ``stored``, and ``updated_at`` (``auto_now``: set on every save)."""
    changed = [name for name, value in stored.items() if getattr(row, name) != value and name != "id"]
    return [*changed, "updated_at"] if "updated_at" not in changed else changed


def _snapshot_of(row: Subscription) -> tuple:
    return tuple(getattr(row, name) for name in TRACKED_FIELDS)


def _new_row(snapshot: SubscriptionSnapshot, organization: Organization) -> Subscription:
    """A row for a subscription first seen in Chargebee (made in its dashboard, say).

    It takes Chargebee's id as its own when that is free, so matching step 1
    still finds it after a deletion unlinks it and a late event arrives.
    """
    taken = Subscription.objects.filter(pk=snapshot.id).exists()
    return Subscription(id=new_subscription_id() if taken else snapshot.id, organization=organization)


def apply_subscription(
    subscription: dict, customer: dict | None = None, *, event_type: str | None = None
) -> ApplyResult:
    """Apply one Chargebee subscription snapshot (and its customer, when known) to the local table.

    ``event_type`` is the webhook's, when there is one: ``subscription_deleted``
    marks the row deleted even if the snapshot lacks ``deleted: true``.
    Raises ``InvalidSnapshot`` for JSON it cannot read. Never calls Chargebee.
    """
    snapshot = SubscriptionSnapshot.read(subscription, deleted=event_type == "subscription_deleted")
    # No savepoint of its own: every caller lets a failure propagate, so the caller's transaction
    # (a delivery's savepoint) undoes it whole.
    with transaction.atomic(savepoint=False):
        row = _WITH_ORGANIZATION.first(snapshot.customer_id, snapshot.id)
        if row is not None:
            organization = customer_org = row.organization
        else:
            organization = customer_org = find_organization(snapshot.customer_id, customer, lock=True)
        if organization is None:
            # An unknown customer: the organization is that of a row matched by id, if any.
            row = _match(snapshot, customer, None, lock=False)
            if row is None:
                return ApplyResult(None, applied=False, reason="unknown customer")
            organization = Organization.objects.locked().get(pk=row.organization_id)
        elif (customer_version(customer) or -1) > (organization.chargebee_customer_version or -1):
            # Compared on the locked row first: most events carry a customer already seen, costing no UPDATE.
            note_customer_version(organization.pk, customer)
            apply_customer(organization, customer)  # its billing details and card_status (customer_profile)
        if row is None:
            row = _match(snapshot, customer, customer_org, lock=True)
        reason = "created"
        if row is not None:
            if row.organization_id != organization.pk:
                # Another organization's row, found by its Chargebee id: that organization is locked too.
                organization = Organization.objects.locked().get(pk=row.organization_id)
            row.organization = organization  # cached: the signals read it
            reason = _ordering(snapshot, row)
            if reason == "stale":
                return ApplyResult(row, applied=False, reason="stale", previous_status=row.status)
        created = row is None
        if created:
            row = _new_row(snapshot, organization)
        previous_status = _known_status(row)
        stored = None if created else _columns(row)
        was_deleted, before = row.deleted_at is not None, _snapshot_of(row)
        seats_before = None if created else seat_limits.seat_terms(row)
        was_linked, was_due = row.chargebee_subscription_id == snapshot.id, row.due_invoices_count > 0
        for name, value in snapshot.fields.items():
            setattr(row, name, value)
        if snapshot.deleted:
            # Unlinked, so the organization can subscribe again; kept for history and ordering.
            row.chargebee_subscription_id = None
            row.deleted_at = row.deleted_at or timezone.now()
        else:
            row.chargebee_subscription_id, row.deleted_at = snapshot.id, None
        if organization.is_deleted and row.status not in CLOSED_STATUSES and not snapshot.deleted:
            row.cancel_reason = CancelReason.ORGANIZATION_DELETED
        if not row.due_invoices_count:
            row.grace_period_ended_at = None  # the next dues get a grace period (and its signal) of their own
        # The row was read under its lock: writing only the columns that changed leaves it as a full save would,
        # for a fraction of the UPDATE's building (most of a worker's or inline webhook's Python is the ORM's).
        if stored is None:
            row.save()
        else:
            compiled_queries.save_columns(row, _changed_columns(row, stored))
        if row.chargebee_subscription_id and not was_linked:
            # Invoices that arrived before their subscription are linked now.
            Invoice.objects.filter(
                organization=organization, chargebee_subscription_id=snapshot.id, subscription__isnull=True
            ).update(subscription=row)
        fired = _lifecycle_signals(previous_status, was_deleted, row, _snapshot_of(row) != before)
        if was_due and not row.due_invoices_count:
            fired.append(signals.payment_recovered)
        _queue_signals(fired, row, previous_status)
        seat_limits.refresh_after_write(organization, seats_before, row)
        renewal_estimates.after_apply(row)  # its next charge, fetched after the commit (queue mode: a task)
    logger.debug("applied %s snapshot of %s to %s (%s)", event_type or "a", snapshot.id, row.pk, row.status)
    return ApplyResult(row, applied=True, created=created, reason=reason, previous_status=previous_status)


def cancel_local_subscriptions(organization: Organization) -> int:
    """Cancel the organization's rows Chargebee will say nothing more about (customer or org gone).

    Each gets the usual signals. Call it inside the transaction that holds
    the organization lock. Returns how many rows changed.
    """
    now = timezone.now()
    rows = list(organization.subscriptions.locked().exclude(status__in=CLOSED_STATUSES))
    for row in rows:
        previous_status = _known_status(row)
        row.status, row.cancelled_at, row.cancel_at_period_end = Status.CANCELLED, now, False
        row.save()
        _queue_signals(_lifecycle_signals(previous_status, row.deleted_at is not None, row, True), row, previous_status)
    seat_limits.refresh_limit(organization)
    return len(rows)
