"""Chargebee customer events: remember the customer's ``resource_version``, and apply its deletion.

The organization stores the ``resource_version`` of its Chargebee customer
(from checkout, customer and subscription events, and sync). A
``customer_deleted`` about a customer older than that one is a late or
replayed event about a customer since deleted and made again under the same
id: applying it would cancel the new subscription locally while Chargebee
bills it, so it changes nothing.
"""

from __future__ import annotations

from enum import StrEnum

from django.db import transaction

from .models import Organization
from .subscription_sync import apply_subscription, customer_version, find_organization, note_customer_version


class Removal(StrEnum):
    UNKNOWN = "unknown customer"
    STALE = "stale"
    REMOVED = "removed"


def customer_changed(customer: dict) -> Organization | None:
    """Remember a known customer's newer ``resource_version``; None when no organization uses it."""
    organization = find_organization(customer["id"], customer)
    if organization is not None:
        note_customer_version(organization.pk, customer)
    return organization


def remove_customer(customer: dict, subscriptions: list[dict]) -> Removal:
    """Apply a ``customer_deleted``: the subscriptions it lists, then unmap the customer.

    Older than the stored customer: nothing changes (``STALE``). Otherwise
    each listed subscription goes through the ordering guard, and the
    customer is unmapped so the organization may get a new one. With no
    stored version the event cannot be placed in time, so it acts only on the
    subscriptions it lists. Rows it does not list are left alone: Chargebee
    lists every subscription it deleted with the customer.
    """
    with transaction.atomic():
        organization = find_organization(customer["id"], customer, lock=True)
        if organization is None:
            return Removal.UNKNOWN
        stored, version = organization.chargebee_customer_version, customer_version(customer)
        if stored is not None and (version is None or version < stored):
            return Removal.STALE
        for subscription in subscriptions:
            apply_subscription(subscription, customer, event_type="subscription_deleted")
        if stored is not None and organization.chargebee_customer_id == customer["id"]:
            organization.chargebee_customer_id = None
            organization.chargebee_customer_version = version
            # A new customer is a new request: reusing the old creation's idempotency key would replay its answer.
            organization.customer_request_key = ""
            fields = ["chargebee_customer_id", "chargebee_customer_version", "customer_request_key", "updated_at"]
            organization.save(update_fields=fields)
        return Removal.REMOVED
