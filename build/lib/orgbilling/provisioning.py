"""Keep each Scalekit organization and its one Chargebee customer in step.

Used by the Scalekit webhook and by checkout (for organizations whose webhook
never arrived). Exactly-once comes from two things together: the organization
row is locked (``SELECT ... FOR UPDATE``) while the customer is created, and
the Chargebee customer id *is* the organization id, so even a crash between
Chargebee's answer and our commit cannot create a second customer: the retry
gets ``duplicate_entry`` and adopts the customer it already made.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .chargebee_gateway import ChargebeeError, customer_meta_data, get_gateway
from .chargebee_snapshot import CLOSED_STATUSES, meta_value
from .models import Organization
from .subscription_sync import apply_subscription, cancel_local_subscriptions

logger = logging.getLogger(__name__)


class OrganizationDeleted(Exception):
    """The organization was deleted in Scalekit; it must never be billed again."""


def _lock(organization_id: str, **defaults) -> tuple[Organization, bool]:
    """Create the organization row if needed, then lock it for the rest of the transaction."""
    _, created = Organization.objects.get_or_create(id=organization_id, defaults=defaults)
    return Organization.objects.select_for_update().get(pk=organization_id), created


def _create_customer(org: Organization) -> str:
    gateway = get_gateway()
    meta = customer_meta_data(org.id)
    try:
        return gateway.create_customer(customer_id=org.id, company=org.display_name or org.id, meta_data=meta)["id"]
    except ChargebeeError as exc:
        if exc.api_error_code != "duplicate_entry":
            raise
    # A customer with our id exists: adopt it only if it says it is ours.
    existing = gateway.retrieve_customer(org.id)
    if meta_value(existing.get("meta_data"), "organizationId") not in (None, org.id):
        raise ChargebeeError(f"customer {org.id} belongs to another organization", api_error_code="id_conflict")
    gateway.update_customer(org.id, company=org.display_name or org.id, meta_data=meta)
    logger.info("adopted existing Chargebee customer %s", org.id)
    return existing["id"]


def ensure_customer(organization_id: str, display_name: str = "") -> Organization:
    """Return the organization with its Chargebee customer, creating either if missing.

    Idempotent and race-safe across processes; refuses deleted organizations.
    """
    with transaction.atomic():
        org, _ = _lock(organization_id, display_name=display_name)
        if org.is_deleted:
            raise OrganizationDeleted(f"organization {organization_id} was deleted")
        if not org.chargebee_customer_id:
            if display_name and not org.display_name:
                org.display_name = display_name
            org.chargebee_customer_id = _create_customer(org)
            org.save()
        return org


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
        org = ensure_customer(organization_id)
        if renamed:
            get_gateway().update_customer(org.chargebee_customer_id, company=display_name or org.id)
        return newer or not had_customer


def delete_organization(organization_id: str, deleted_at: datetime | None = None) -> int:
    """Cancel every live Chargebee subscription of the organization, then soft-delete it.

    Runs in one transaction: if Chargebee fails midway nothing local changes
    and the caller retries; subscriptions already cancelled are skipped, so
    a retry finishes the job. Every snapshot Chargebee returns goes through
    ``apply_subscription`` (so the cancellation signals fire once, and the
    webhooks that follow are stale); local rows Chargebee did not list are
    cancelled too. Returns how many subscriptions were cancelled.
    """
    with transaction.atomic():
        org, _ = _lock(organization_id)
        gateway = get_gateway()
        # Listing by the org id too covers a customer created by a run that crashed before saving its id.
        customer_id = org.chargebee_customer_id or org.id
        cancelled = 0
        for entry in gateway.iter_subscriptions(customer_id=customer_id):
            subscription = entry["subscription"]
            if subscription.get("status") not in CLOSED_STATUSES:
                subscription = gateway.cancel_subscription_now(subscription["id"])
                cancelled += 1
            apply_subscription(subscription, entry.get("customer"))
        org.deleted_at = org.deleted_at or deleted_at or timezone.now()
        org.save()
        cancel_local_subscriptions(org)
        return cancelled
