"""The one write path for the card on file: the customer's primary payment source, mirrored.

``payment_source_*``, ``card_expiry_reminder``, ``card_expired`` and
``customer_changed`` webhooks and the ``orgbilling_sync`` payment-source pass
all end here. The organization row is locked, as for the other mirrors.

* A source is the primary one when the customer says so
  (``primary_payment_source_id``), or, without the customer at hand (a sync
  listing), when it is the one stored or none is stored yet.
* Ordering: a source's snapshot is applied when its ``resource_version`` is
  newer than the stored one, or equal and different.
* ``card_expiry_reminder`` and ``card_expired`` carry the legacy card object
  (no id, no version): they only move the stored card's status forward.
* Expiry warnings: from 30 days before the last day of the expiry month.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import transaction

from .chargebee_snapshot import InvalidSnapshot
from .event_envelope import storable
from .invoices import should_apply
from .models import BillingProfile, Organization
from .subscription_sync import find_organization

WARN_DAYS = 30
CARD_FIELDS = ("payment_source_id", "payment_type", "payment_status", "card_brand", "card_last4")
EXPIRY_FIELDS = ("card_expiry_month", "card_expiry_year")
STATUS_BY_EVENT = {"card_expiry_reminder": "expiring", "card_expired": "expired"}


@dataclass(frozen=True)
class SourceResult:
    """What ``apply_payment_source`` did; ``reason`` is updated, removed, stale, not primary or unknown customer."""

    profile: BillingProfile | None
    applied: bool
    created: bool = False
    reason: str = ""


def _text(data: dict, key: str, length: int) -> str:
    value = data.get(key) or ""
    if not storable(value, length):
        raise InvalidSnapshot(f"payment source {key} is not a string of at most {length} characters")
    return value


def _month(data: dict, key: str, top: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise InvalidSnapshot(f"payment source {key} is not an integer from 1 to {top}")
    return value


def read_source(data: Any) -> dict[str, Any]:
    """The profile fields of a Chargebee ``payment_source`` (raises ``InvalidSnapshot``)."""
    if not isinstance(data, dict):
        raise InvalidSnapshot("payment source is not an object")
    card = data.get("card") or {}
    if not isinstance(card, dict):
        raise InvalidSnapshot("payment source card is not an object")
    version = data.get("resource_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise InvalidSnapshot("payment source resource_version is not a non-negative integer")
    source_id = _text(data, "id", 50)
    if not source_id or not _text(data, "customer_id", 50):
        raise InvalidSnapshot("payment source id or customer_id is missing")
    return {
        "payment_source_id": source_id,
        "payment_type": _text(data, "type", 40),
        "payment_status": _text(data, "status", 30),
        "card_brand": _text(card, "brand", 30),
        "card_last4": _text(card, "last4", 4),
        "card_expiry_month": _month(card, "expiry_month", 12),
        "card_expiry_year": _month(card, "expiry_year", 9999),
        "payment_source_version": version,
    }


def locked_profile(customer_id: str, customer: dict | None) -> tuple[BillingProfile | None, bool]:
    """The organization's profile (created if missing) with the organization row locked; None when unknown."""
    organization = find_organization(customer_id, customer, lock=True)
    if organization is None:
        return None, False
    profile, created = BillingProfile.objects.get_or_create(organization=organization)
    profile.organization = organization
    return profile, created


def _clear_card(profile: BillingProfile) -> None:
    for name in CARD_FIELDS:
        setattr(profile, name, "")
    for name in (*EXPIRY_FIELDS, "payment_source_version"):
        setattr(profile, name, None)


def apply_payment_source(source: dict, customer: dict | None = None, *, event_type: str | None = None) -> SourceResult:
    """Apply one payment source snapshot (``payment_source_deleted``: remove it if it is the stored one)."""
    fields = read_source(source)
    with transaction.atomic(savepoint=False):
        profile, created = locked_profile(source["customer_id"], customer)
        if profile is None:
            return SourceResult(None, applied=False, reason="unknown customer")
        stored_id, source_id = profile.payment_source_id, fields["payment_source_id"]
        primary = (customer or {}).get("primary_payment_source_id")
        if event_type == "payment_source_deleted" or source.get("deleted") is True:
            if stored_id != source_id:
                return SourceResult(profile, applied=False, reason="not primary")
            _clear_card(profile)
            profile.save()
            return SourceResult(profile, applied=True, reason="removed")
        if primary not in (None, source_id) or (primary is None and stored_id not in ("", source_id)):
            return SourceResult(profile, applied=False, reason="not primary")
        if stored_id == source_id:
            differs = any(getattr(profile, name) != value for name, value in fields.items())
            if not should_apply(fields["payment_source_version"], profile.payment_source_version, differs):
                return SourceResult(profile, applied=False, reason="stale")
        for name, value in fields.items():
            setattr(profile, name, value)
        profile.save()
    return SourceResult(profile, applied=True, created=created or not stored_id, reason="updated")


def apply_card_event(card: dict, customer: dict, event_type: str) -> SourceResult:
    """``card_expiry_reminder`` / ``card_expired``: the stored card (same last four) is expiring / expired."""
    with transaction.atomic(savepoint=False):
        profile, _ = locked_profile(customer["id"], customer)
        if profile is None:
            return SourceResult(None, applied=False, reason="unknown customer")
        status = STATUS_BY_EVENT[event_type]
        if not profile.has_card or profile.card_last4 != card.get("last4") or profile.payment_status == status:
            return SourceResult(profile, applied=False, reason="stale")
        profile.payment_status = status
        profile.save(update_fields=["payment_status", "updated_at"])
    return SourceResult(profile, applied=True, reason="updated")


def apply_customer_payment(customer: dict) -> SourceResult:
    """``customer_changed``: follow its ``primary_payment_source_id`` (none: no card on file)."""
    with transaction.atomic(savepoint=False):
        profile, _ = locked_profile(customer["id"], customer)
        if profile is None:
            return SourceResult(None, applied=False, reason="unknown customer")
        primary = customer.get("primary_payment_source_id")
        if primary is None and customer.get("card_status") != "no_card":
            primary = profile.payment_source_id  # Chargebee leaves out what it does not know: nothing to follow
        if not storable(primary or "", 50) or (primary or "") == profile.payment_source_id:
            return SourceResult(profile, applied=False, reason="stale")
        # Another source became primary: its own event (or the next sync) brings its details.
        _clear_card(profile)
        profile.payment_source_id = primary or ""
        profile.save()
    return SourceResult(profile, applied=True, reason="updated")


@dataclass(frozen=True)
class CardWarning:
    kind: str  # "card_expiring" or "card_expired"
    expires_on: date


def card_warning(profile: BillingProfile | None, today: date) -> CardWarning | None:
    """A warning from 30 days before the last day of the card's expiry month; "expired" after that day."""
    if profile is None or not profile.card_expiry_year or not profile.card_expiry_month:
        return None
    year, month = profile.card_expiry_year, profile.card_expiry_month
    last_day = date(year, month, calendar.monthrange(year, month)[1])
    if today > last_day or profile.payment_status == "expired":
        return CardWarning("card_expired", last_day)
    if today >= last_day - timedelta(days=WARN_DAYS):
        return CardWarning("card_expiring", last_day)
    return None


def profile_of(organization: Organization) -> BillingProfile | None:
    """The organization's profile when it has one (one query; None before any payment data arrived)."""
    return BillingProfile.objects.filter(organization=organization).first()
