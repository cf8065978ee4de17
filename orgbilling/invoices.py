"""The one write path for invoices: apply a Chargebee invoice to its local row.

``invoice_*`` and ``payment_*`` webhooks and the ``orgbilling_sync`` invoice
pass all call ``apply_invoice`` with the invoice JSON Chargebee gave them:

* **Owner**: the organization billed through the invoice's customer; an
  invoice of an unknown customer is not stored. The organization row is
  locked, so concurrent copies of one invoice queue there.
* **Ordering**: applied only when its ``resource_version`` is newer than the
  stored one, or equal and different (Chargebee's copy wins).
* **Subscription**: linked when the subscription is known locally, else kept
  with Chargebee's id and linked by ``apply_subscription`` when it arrives.
* **Deletion** keeps a tombstone, never listed; a voided invoice stays, void.
* **Signals** after commit: ``payment_failed`` once when an invoice becomes due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from . import signals
from .chargebee_snapshot import InvalidSnapshot
from .event_envelope import storable
from .models import Invoice, Organization, Subscription
from .signal_sending import send_after_commit
from .subscription_sync import find_organization

MAX_AMOUNT = 2**63 - 1  # bigint columns
DUE_STATUSES = (Invoice.Status.PAYMENT_DUE, Invoice.Status.NOT_PAID)


def _id(data: dict, key: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not storable(value, 50) or not value:
        raise InvalidSnapshot(f"invoice {key} is missing or not a string of at most 50 characters")
    return value


def _number(data: dict, key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        raise InvalidSnapshot(f"invoice {key} is not an integer from 0 to {MAX_AMOUNT}")
    return value


def _time(data: dict, key: str) -> datetime | None:
    seconds = _number(data, key)
    try:
        return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidSnapshot(f"invoice {key} is out of range") from None


def _short(data: dict, key: str, length: int) -> str:
    value = data.get(key) or ""
    if not storable(value, length):
        raise InvalidSnapshot(f"invoice {key} is not a string of at most {length} characters")
    return value


@dataclass(frozen=True)
class InvoiceSnapshot:
    """One Chargebee invoice as orgbilling stores it."""

    id: str
    deleted: bool
    resource_version: int | None
    fields: dict[str, Any]

    @classmethod
    def read(cls, data: Any, *, deleted: bool = False) -> InvoiceSnapshot:
        if not isinstance(data, dict):
            raise InvalidSnapshot("invoice is not an object")
        status = data.get("status")
        if status not in Invoice.Status.values:
            raise InvalidSnapshot(f"invoice status {status!r} is not one orgbilling knows")
        return cls(
            id=_id(data, "id"),
            deleted=deleted or data.get("deleted") is True,
            resource_version=_number(data, "resource_version"),
            fields={
                "chargebee_customer_id": _id(data, "customer_id"),
                "chargebee_subscription_id": _id(data, "subscription_id", required=False),
                "status": status,
                "date": _time(data, "date"),
                "due_date": _time(data, "due_date"),
                "total": _number(data, "total") or 0,
                "amount_paid": _number(data, "amount_paid") or 0,
                "amount_due": _number(data, "amount_due") or 0,
                "currency": _short(data, "currency_code", 3),
                "dunning_status": _short(data, "dunning_status", 20),
            },
        )


@dataclass(frozen=True)
class InvoiceResult:
    """What ``apply_invoice`` did; ``reason`` is created, updated, deleted, stale or unknown customer."""

    invoice: Invoice | None
    applied: bool
    created: bool = False
    reason: str = ""


def should_apply(incoming: int | None, stored: int | None, differs: bool) -> bool:
    """The ordering guard of every mirror: newer wins; on an equal version Chargebee's differing copy wins."""
    if stored is None or incoming is None:
        return stored is None or differs
    return incoming > stored or (incoming == stored and differs)


def apply_invoice(invoice: dict, customer: dict | None = None, *, event_type: str | None = None) -> InvoiceResult:
    """Apply one Chargebee invoice snapshot. Raises ``InvalidSnapshot``; never calls Chargebee."""
    snapshot = InvoiceSnapshot.read(invoice, deleted=event_type == "invoice_deleted")
    with transaction.atomic(savepoint=False):
        organization = find_organization(snapshot.fields["chargebee_customer_id"], customer, lock=True)
        if organization is None:
            return InvoiceResult(None, applied=False, reason="unknown customer")
        row = Invoice.objects.filter(pk=snapshot.id).first()
        created = row is None
        deleted_at = ((row.deleted_at if row else None) or timezone.now()) if snapshot.deleted else None
        if not created:
            stored = {name: getattr(row, name) for name in snapshot.fields}
            differs = stored != snapshot.fields or (row.deleted_at is None) != (deleted_at is None)
            if not should_apply(snapshot.resource_version, row.resource_version, differs):
                return InvoiceResult(row, applied=False, reason="stale")
        row = row or Invoice(id=snapshot.id)
        was_due = not created and row.status in DUE_STATUSES
        for name, value in snapshot.fields.items():
            setattr(row, name, value)
        row.deleted_at = deleted_at
        row.organization = organization
        row.resource_version = snapshot.resource_version
        if row.subscription_id is None:  # a link once made stays, also after the subscription is deleted
            row.subscription = _subscription_of(organization, row.chargebee_subscription_id)
        row.save()
        if row.status in DUE_STATUSES and not was_due and row.deleted_at is None:
            send_after_commit(signals.payment_failed, Invoice, organization=organization, invoice=row)
    reason = "deleted" if snapshot.deleted else "created" if created else "updated"
    return InvoiceResult(row, applied=True, created=created, reason=reason)


def _subscription_of(organization: Organization, chargebee_subscription_id: str) -> Subscription | None:
    if not chargebee_subscription_id:
        return None
    return organization.subscriptions.filter(chargebee_subscription_id=chargebee_subscription_id).first()


def listed_invoices(organization_id: str) -> QuerySet[Invoice]:
    """The organization's invoices as shown to billing managers: newest first, deleted ones left out."""
    return Invoice.objects.filter(organization_id=organization_id, deleted_at__isnull=True).order_by("-date", "-pk")
