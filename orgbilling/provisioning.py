"""Keep each Scalekit organization and its one Chargebee customer in step.

Used by the Scalekit webhook and by checkout (for organizations whose webhook
never arrived). No row lock is held across a Chargebee call: each step
records its intent in a short transaction, commits, calls Chargebee, then
records the result in another. Exactly-once comes from what Chargebee itself
keeps, not from our lock:

* the customer id *is* the organization id, and its creation carries an
  idempotency key recorded with the intent, so a retry after a crash gets
  the customer the first call made (or ``duplicate_entry``, and adopts it);
  racing callers can only ever make one customer;
* a rename commits locally, then sends the name the organization has *now*;
  a caller that finds the name changed since its call sends it again, so the
  call that lands last carries the newest name;
* a deletion commits ``deleted_at`` first (nothing provisions or checks out
  for the organization from then on), then cancels what Chargebee lists as
  live: a later attempt lists again and cancels only what is still live.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .chargebee_gateway import ChargebeeError, ChargebeeGateway, customer_meta_data, get_gateway
from .chargebee_snapshot import CLOSED_STATUSES, meta_value
from .deliveries import Incomplete
from .models import Organization
from .subscription_sync import apply_subscription, cancel_local_subscriptions

logger = logging.getLogger(__name__)


class OrganizationDeleted(Exception):
    """The organization was deleted in Scalekit; it must never be billed again."""


def _lock(organization_id: str, **defaults) -> tuple[Organization, bool]:
    """Create the organization row if needed, then lock it for the rest of the (short) transaction."""
    _, created = Organization.objects.get_or_create(id=organization_id, defaults=defaults)
    return Organization.objects.locked().get(pk=organization_id), created


def _create_customer(org: Organization, company: str) -> str:
    gateway = get_gateway()
    meta = customer_meta_data(org.id)
    try:
        created = gateway.create_customer(
            customer_id=org.id, company=company, meta_data=meta, idempotency_key=org.customer_request_key
        )
        return created["id"]
    except ChargebeeError as exc:
        if exc.api_error_code != "duplicate_entry":
            raise
    # A customer with our id exists (a racing caller made it): adopt it only if it says it is ours.
    existing = gateway.retrieve_customer(org.id)
    if meta_value(existing.get("meta_data"), "organizationId") not in (None, org.id):
        raise ChargebeeError(f"customer {org.id} belongs to another organization", api_error_code="id_conflict")
    gateway.update_customer(org.id, company=company, meta_data=meta)
    logger.info("adopted existing Chargebee customer %s", org.id)
    return existing["id"]


def _customer_intent(organization_id: str, display_name: str) -> Organization:
    """The organization, with the idempotency key of its customer's creation recorded if it has no customer."""
    with transaction.atomic():
        org, _ = _lock(organization_id, display_name=display_name)
        if org.is_deleted:
            raise OrganizationDeleted(f"organization {organization_id} was deleted")
        if not org.chargebee_customer_id:
            if display_name and not org.display_name:
                org.display_name = display_name
            org.customer_request_key = org.customer_request_key or uuid.uuid4().hex
            org.save()
        return org


def ensure_customer(organization_id: str, display_name: str = "") -> Organization:
    """Return the organization with its Chargebee customer, creating either if missing.

    Idempotent and race-safe across processes without a lock held across the
    call (module docstring); refuses deleted organizations.
    """
    org = _customer_intent(organization_id, display_name)
    if org.chargebee_customer_id:
        return org
    company = org.display_name or org.id
    customer_id = _create_customer(org, company)
    Organization.objects.filter(pk=org.pk, chargebee_customer_id__isnull=True).update(
        chargebee_customer_id=customer_id, updated_at=timezone.now()
    )
    push_company(org.pk, sent=company)  # a rename committed while the customer was being made
    return Organization.objects.get(pk=org.pk)


def push_company(organization_id: str, sent: str | None = None) -> None:
    """Send the organization's current name to its customer until the last call sent is the newest name.

    ``sent`` is the name this caller's last call carried (None: it sent none).
    """
    gateway: ChargebeeGateway | None = None
    while True:
        org = Organization.objects.get(pk=organization_id)
        company = org.display_name or org.id
        if company == sent or not org.chargebee_customer_id:
            return
        gateway = gateway or get_gateway()
        gateway.update_customer(org.chargebee_customer_id, company=company)
        sent = company


def apply_organization(
    organization_id: str, *, display_name: str, external_id: str, update_time: datetime | None
) -> bool:
    """Apply a Scalekit organization snapshot (created or updated event).

    The snapshot is applied only when its ``update_time`` is newer than the
    last one applied, so a late or reordered event never undoes a rename. The
    customer is provisioned either way (an ``updated`` may arrive first).
    Returns False when the snapshot was stale and nothing changed.
    """
    with transaction.atomic():
        org, created = _lock(organization_id)
        if org.is_deleted:
            raise OrganizationDeleted(f"organization {organization_id} was deleted")
        newer = (
            created
            or org.scalekit_update_time is None
            or (update_time is not None and update_time > org.scalekit_update_time)
        )
        renamed = newer and org.chargebee_customer_id is not None and org.display_name != display_name
        if newer:
            org.display_name, org.external_id, org.scalekit_update_time = display_name, external_id, update_time
            org.save()
        had_customer = org.chargebee_customer_id is not None
    ensure_customer(organization_id)
    if renamed:
        push_company(organization_id)
    return newer or not had_customer


def cancel_for_deleted_organization(gateway: ChargebeeGateway, entry: dict) -> bool:
    """Cancel one listed subscription of a deleted organization unless Chargebee says it is closed.

    What Chargebee answers (or listed, for a closed one) is applied locally in
    its own short transaction. True when a cancellation was sent.
    """
    subscription = entry["subscription"]
    live = subscription.get("status") not in CLOSED_STATUSES
    if live:
        subscription = gateway.cancel_subscription_now(subscription["id"])
    apply_subscription(subscription, entry.get("customer"))
    return live


def delete_organization(
    organization_id: str,
    deleted_at: datetime | None = None,
    *,
    time_budget: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Soft-delete the organization, then cancel every live Chargebee subscription of its customer.

    The deletion is committed before the first call (module docstring). Each
    cancellation is its own call and transaction; given a ``time_budget`` (a
    webhook attempt's), once that many seconds have gone with at least one
    sent, ``Incomplete`` leaves the rest to the next attempt. Local rows
    Chargebee did not list are cancelled at the end. Returns how many were cancelled.
    """
    with transaction.atomic():
        org, _ = _lock(organization_id)
        if not org.is_deleted:
            org.deleted_at = deleted_at or timezone.now()
            org.save(update_fields=["deleted_at", "updated_at"])
    gateway = get_gateway()
    deadline = None if time_budget is None else clock() + time_budget
    cancelled = 0
    # Listing by the org id too covers a customer created by a run that crashed before saving its id.
    for entry in gateway.iter_subscriptions(customer_id=org.chargebee_customer_id or org.id):
        out_of_time = deadline is not None and cancelled > 0 and clock() >= deadline
        if out_of_time and entry["subscription"].get("status") not in CLOSED_STATUSES:
            raise Incomplete(f"{cancelled} subscriptions cancelled in Chargebee; the rest on the next attempt")
        cancelled += cancel_for_deleted_organization(gateway, entry)
    with transaction.atomic():
        org, _ = _lock(organization_id)
        cancel_local_subscriptions(org)
    return cancelled
