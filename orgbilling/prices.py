"""The one write path for the price catalog: apply a Chargebee item price to its local row.

``item_price_created``, ``_updated`` and ``_deleted`` webhooks and the
``orgbilling_sync`` prices pass all call ``apply_item_price`` with the item
price JSON Chargebee gave them:

* **Plans only**: an addon's or a charge's price is not stored (``reason``
  "not a plan"); the billing page sells plans.
* **Ordering**: applied only when its ``resource_version`` is newer than the
  stored one, or equal and different (Chargebee's copy wins), through the
  same ``should_apply`` as every mirror. The row is locked, so concurrent
  copies of one price queue there.
* **Deletion** keeps a tombstone (``deleted_at``), so a late, older event
  cannot bring the price back; subscriptions on it still show its price.
* **Signal** ``item_price_changed`` after commit, once per applied change.

The prices pass (``sync_item_prices``) lists ``GET /item_prices`` for plans,
100 a page; a full run also tombstones local prices Chargebee no longer lists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import signals
from .chargebee_gateway import get_gateway
from .chargebee_snapshot import InvalidSnapshot
from .event_envelope import storable
from .invoices import MAX_AMOUNT, should_apply
from .mirror_sync import PassSummary, run_pass, unix_time
from .models import ItemPrice
from .signal_sending import send_after_commit

logger = logging.getLogger(__name__)

PRICING_MODELS = ("flat_fee", "per_unit", "tiered", "volume", "stairstep")
PERIOD_UNITS = ("day", "week", "month", "year")
TRIAL_UNITS = ("day", "month")
MAX_TIERS = 100


def _text(data: dict, key: str, length: int | None, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not storable(value, length or 10**6) or (required and not value):
        raise InvalidSnapshot(f"item price {key} is missing or not a string of at most {length} characters")
    return value


def _number(data: dict, key: str, *, minimum: int = 0, default: int | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_AMOUNT:
        raise InvalidSnapshot(f"item price {key} is not an integer from {minimum} to {MAX_AMOUNT}")
    return value


def _choice(data: dict, key: str, allowed: tuple[str, ...], *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if value not in allowed:
        raise InvalidSnapshot(f"item price {key} {value!r} is not one of {', '.join(allowed)}")
    return value


def _tiers(data: dict) -> list[dict]:
    tiers = data.get("tiers")
    if tiers is None:
        return []
    if not isinstance(tiers, list) or len(tiers) > MAX_TIERS:
        raise InvalidSnapshot(f"item price tiers is not a list of at most {MAX_TIERS}")
    read = []
    for tier in tiers:
        if not isinstance(tier, dict):
            raise InvalidSnapshot("an item price tier is not an object")
        read.append(
            {
                "starting_unit": _number(tier, "starting_unit", minimum=1, default=1),
                "ending_unit": _number(tier, "ending_unit", minimum=1),
                "price": _number(tier, "price", default=0),
            }
        )
    return read


@dataclass(frozen=True)
class ItemPriceSnapshot:
    """One Chargebee item price as orgbilling stores it."""

    id: str
    is_plan: bool
    deleted: bool
    resource_version: int | None
    fields: dict[str, Any]

    @classmethod
    def read(cls, data: Any, *, deleted: bool = False) -> ItemPriceSnapshot:
        if not isinstance(data, dict):
            raise InvalidSnapshot("item price is not an object")
        status = _choice(data, "status", tuple(ItemPrice.Status.values))
        deleted = deleted or status == ItemPrice.Status.DELETED or data.get("deleted") is True
        currency = _text(data, "currency_code", 3, required=True)
        return cls(
            id=_text(data, "id", 100, required=True),
            is_plan=data.get("item_type", "plan") == "plan",
            deleted=deleted,
            resource_version=_number(data, "resource_version"),
            fields={
                "item_id": _text(data, "item_id", 100),
                # Customers see external_name; name is Chargebee's internal, unique label.
                "external_name": _text(data, "external_name", 255) or _text(data, "name", 255),
                "description": _text(data, "description", None),
                "status": ItemPrice.Status.DELETED if deleted else status,
                "currency": currency.upper(),
                "price": _number(data, "price"),
                "pricing_model": _choice(data, "pricing_model", PRICING_MODELS),
                "tiers": _tiers(data),
                "period": _number(data, "period", minimum=1, default=1),
                "period_unit": _choice(data, "period_unit", PERIOD_UNITS),
                "trial_period": _number(data, "trial_period"),
                "trial_period_unit": _choice(data, "trial_period_unit", TRIAL_UNITS, required=False),
            },
        )


@dataclass(frozen=True)
class PriceResult:
    """What ``apply_item_price`` did; ``reason``: created, updated, deleted, stale or not a plan."""

    item_price: ItemPrice | None
    applied: bool
    created: bool = False
    reason: str = ""


def apply_item_price(item_price: dict, *, event_type: str | None = None) -> PriceResult:
    """Apply one Chargebee item price snapshot. Raises ``InvalidSnapshot``; never calls Chargebee."""
    snapshot = ItemPriceSnapshot.read(item_price, deleted=event_type == "item_price_deleted")
    if not snapshot.is_plan:
        return PriceResult(None, applied=False, reason="not a plan")
    with transaction.atomic(savepoint=False):
        # A placeholder makes the row lockable when it is new; it is filled before this transaction commits,
        # and a concurrent copy of the same price waits on the lock, then compares with what was stored.
        placeholder = ItemPrice(id=snapshot.id, status="", currency="", pricing_model="", period_unit="")
        ItemPrice.objects.bulk_create([placeholder], ignore_conflicts=True)
        row = ItemPrice.objects.select_for_update().get(pk=snapshot.id)
        created = row.status == ""
        deleted_at = (row.deleted_at or timezone.now()) if snapshot.deleted else None
        if not created:
            stored = {name: getattr(row, name) for name in snapshot.fields}
            differs = stored != snapshot.fields or (row.deleted_at is None) != (deleted_at is None)
            if not should_apply(snapshot.resource_version, row.resource_version, differs):
                return PriceResult(row, applied=False, reason="stale")
        for name, value in snapshot.fields.items():
            setattr(row, name, value)
        row.deleted_at = deleted_at
        row.resource_version = snapshot.resource_version
        row.save()
        send_after_commit(signals.item_price_changed, ItemPrice, item_price=row, created=created)
    reason = "deleted" if snapshot.deleted else "created" if created else "updated"
    return PriceResult(row, applied=True, created=created, reason=reason)


@dataclass
class PriceSyncSummary(PassSummary):
    """Counts of one prices pass; ``gone`` are prices Chargebee no longer lists (tombstoned here)."""

    gone: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"{self.name}: created {self.created}, updated {self.updated}, unchanged {self.unchanged}"
            f", gone from Chargebee {len(self.gone)}, failed {len(self.failed)}"
        )
        return text + (" (dry run: nothing was written)" if self.dry_run else "")


def sync_item_prices(
    *, since: datetime | None = None, dry_run: bool = False, progress: Callable[[int], None] | None = None
) -> PriceSyncSummary:
    """Apply every plan item price Chargebee lists (or those updated after ``since``), 100 a page.

    A full run (no ``since``) also tombstones the local prices it did not see,
    unless they changed here after the run began (a webhook during the run).
    Chargebee errors propagate, and then nothing is called gone.
    """
    summary = PriceSyncSummary("item prices", dry_run)
    started = timezone.now()
    seen: set[str] = set()

    def listed() -> Iterator[dict]:
        for entry in get_gateway().iter_item_prices(updated_after=unix_time(since)):
            seen.add(str(entry.get("id")))
            yield entry

    run_pass(summary, listed(), apply_item_price, progress)
    if since is None:
        gone = ItemPrice.objects.filter(deleted_at__isnull=True, updated_at__lt=started).exclude(pk__in=seen)
        summary.gone = sorted(gone.values_list("pk", flat=True))
        if summary.gone and not dry_run:
            _tombstone(summary.gone, started)
    return summary


def _tombstone(price_ids: list[str], started: datetime) -> None:
    """Mark prices Chargebee no longer lists deleted, as its ``item_price_deleted`` would have."""
    for price_id in price_ids:
        with transaction.atomic():
            row = ItemPrice.objects.select_for_update().filter(pk=price_id, deleted_at__isnull=True).first()
            if row is None or row.updated_at >= started:
                continue
            row.status, row.deleted_at = ItemPrice.Status.DELETED, timezone.now()
            row.save(update_fields=["status", "deleted_at", "updated_at"])
            send_after_commit(signals.item_price_changed, ItemPrice, item_price=row, created=False)
