"""What ``BillingProfile`` mirrors of the Chargebee customer: billing details and ``card_status``, one write.

A customer object arrives with ``customer_changed``, with every subscription,
invoice, payment-source and card event, in hosted-page content, in the answer
of a customer update and beside every subscription a sync lists. Wherever it
comes from it is applied here, whole, under one ordering guard: the profile's
``customer_version`` (newer wins; an equal version that differs is
Chargebee's copy and wins too). Storing only some fields of a version would
let the guard hide the others, so the details and ``card_status`` always
move together.

``card_status`` (``valid``, ``expiring``, ``expired``, ``invalid``,
``no_card``, ``pending_verification``) says whether a change can be charged
to the card on file. Chargebee leaves out what it does not know: a customer
object without ``card_status`` keeps the stored one.

The caller holds the organization's row lock (``find_organization(...,
lock=True)``), as every mirror's write does.
"""

from __future__ import annotations

from typing import Any

from .event_envelope import storable
from .models import BillingProfile, Organization

ADDRESS_FIELDS = ("line1", "line2", "city", "state", "zip", "country")
CARD_STATUS_LENGTH = 30  # the column


def read_details(customer: dict) -> dict[str, Any]:
    """The billing details a Chargebee customer holds (its billing address and VAT number)."""
    address = customer.get("billing_address") or {}
    address = address if isinstance(address, dict) else {}

    def text(source: dict, key: str, length: int) -> str:
        value = source.get(key) or ""
        return value if storable(value, length) else ""

    return {
        "company": text(address, "company", 250) or text(customer, "company", 250),
        "billing_email": text(address, "email", 70),
        "vat_number": text(customer, "vat_number", 20),
        "billing_address": {key: text(address, key, 150) for key in ADDRESS_FIELDS if text(address, key, 150)},
    }


def read_profile_fields(customer: dict, stored: BillingProfile) -> dict[str, Any]:
    """Every profile field the customer object sets: its details, and ``card_status`` when it carries one."""
    fields = read_details(customer)
    status = customer.get("card_status")
    fields["card_status"] = status if storable(status, CARD_STATUS_LENGTH) and status else stored.card_status
    return fields


def customer_version(customer: dict) -> int | None:
    version = customer.get("resource_version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def store_customer(profile: BillingProfile, customer: dict) -> bool:
    """Apply the customer to ``profile`` under the ordering guard; True when the profile was written."""
    from .invoices import should_apply  # every mirror's guard; invoices imports subscription_sync, which imports us

    fields, version = read_profile_fields(customer, profile), customer_version(customer)
    differs = any(getattr(profile, name) != value for name, value in fields.items())
    if not should_apply(version, profile.customer_version, differs):
        return False
    for name, value in fields.items():
        setattr(profile, name, value)
    profile.customer_version = version
    profile.save()
    return True


def apply_customer(organization: Organization, customer: Any) -> bool:
    """Apply a customer object of ``organization`` (locked by the caller) to its profile (made if missing).

    Only the organization's own, live customer counts; anything that is not an
    object with the organization's customer id changes nothing.
    """
    if not isinstance(customer, dict) or customer.get("deleted") is True:
        return False
    if not customer.get("id") or customer.get("id") != organization.chargebee_customer_id:
        return False
    profile, _ = BillingProfile.objects.get_or_create(organization=organization)
    return store_customer(profile, customer)
