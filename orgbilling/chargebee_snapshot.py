"""Read a Chargebee subscription (plain API JSON) into the values orgbilling stores.

No database here: webhooks, the checkout redirect and reconciliation all hand
over the same JSON, so one reader serves them. Both catalog shapes are read:
Product Catalog 2.0 (``subscription_items``) and 1.0 (``plan_id``,
``plan_quantity``, ``addons``), into one list of items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import json_input
from .event_envelope import storable
from .models import Subscription
from .statuses import CANCELLED

CLOSED_STATUSES = CANCELLED  # see orgbilling.statuses
MAX_ID_LENGTH = 50  # Chargebee ids are at most 50 characters, as are the local columns
MAX_PLAN_LENGTH = 100  # the plan_id column


class InvalidSnapshot(ValueError):
    """The subscription JSON lacks something orgbilling needs, or holds a value it does not know."""


def meta_value(meta: Any, key: str) -> Any:
    """Read a meta_data key whatever its case (other tools lowercase keys) and shape.

    Chargebee hands meta_data over as an object, but tools that stored it as
    a string leave JSON text; anything unreadable counts as empty.
    """
    if isinstance(meta, str):
        try:
            meta = json_input.loads(meta)
        except json_input.InvalidJson:
            return None
    if not isinstance(meta, dict):
        return None
    wanted = key.lower()
    value = next((value for name, value in meta.items() if str(name).lower() == wanted), None)
    # Values are looked up in the database: one that no column can hold matches nothing.
    return None if isinstance(value, str) and not storable(value, MAX_ID_LENGTH) else value


def _string(data: dict, key: str) -> str:
    value = data.get(key)
    if not storable(value, MAX_ID_LENGTH) or not value:
        raise InvalidSnapshot(f"subscription {key} is missing or not a string of at most {MAX_ID_LENGTH} characters")
    return value


MAX_QUANTITY = 2**31 - 1  # the seats column (PostgreSQL integer)
MAX_VERSION = 2**63 - 1  # the resource_version column (bigint)


def _integer(value: Any, what: str, maximum: int = MAX_QUANTITY) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidSnapshot(f"{what} is not an integer from 0 to {maximum}")
    return value


def _time(data: dict, key: str) -> datetime | None:
    """Chargebee times are unix seconds; stored as aware UTC datetimes."""
    seconds = _integer(data.get(key), f"subscription {key}", MAX_VERSION)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidSnapshot(f"subscription {key} is out of range") from None


def _item(item_price_id: Any, item_type: str, quantity: Any, unit_price: Any = None) -> dict:
    if not storable(item_price_id, MAX_PLAN_LENGTH) or not item_price_id:
        raise InvalidSnapshot(f"a {item_type} item has no id of at most {MAX_PLAN_LENGTH} characters")
    item = {"item_price_id": item_price_id, "item_type": item_type, "quantity": _integer(quantity, "item quantity")}
    if unit_price is not None:
        # What this subscription pays per unit (minor units), which outlives a price changed or archived since.
        item["unit_price"] = _integer(unit_price, "item unit_price", MAX_VERSION)
    return item


def _items(data: dict) -> list[dict]:
    """Every item as ``{"item_price_id", "item_type", "quantity"}`` (and ``unit_price`` when Chargebee gives
    one), whatever the catalog version."""
    if data.get("subscription_items") is not None:
        entries = data["subscription_items"]
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise InvalidSnapshot("subscription_items is not a list of objects")
        return [
            _item(e.get("item_price_id"), str(e.get("item_type") or "plan"), e.get("quantity"), e.get("unit_price"))
            for e in entries
        ]
    plan = data.get("plan_id")
    items = [_item(plan, "plan", data.get("plan_quantity", 1), data.get("plan_unit_price"))] if plan else []
    addons = data.get("addons") or []
    if not isinstance(addons, list) or not all(isinstance(addon, dict) for addon in addons):
        raise InvalidSnapshot("addons is not a list of objects")
    return items + [_item(a.get("id"), "addon", a.get("quantity"), a.get("unit_price")) for a in addons]


def _dues(data: dict) -> dict[str, Any]:
    """Past due: Chargebee counts the unpaid invoices, their total and since when (absent: none)."""
    currency = data.get("currency_code") or ""
    if not storable(currency, 3):
        raise InvalidSnapshot("subscription currency_code is not a string of at most 3 characters")
    count = _integer(data.get("due_invoices_count"), "subscription due_invoices_count") or 0
    return {
        "currency": currency,
        "due_invoices_count": count,
        "total_dues": (_integer(data.get("total_dues"), "subscription total_dues", MAX_VERSION) or 0) if count else 0,
        "due_since": _time(data, "due_since") if count else None,
    }


def _scheduled_changes(data: dict) -> dict[str, Any]:
    """Chargebee's flag for a change waiting for the term's end; without one, what orgbilling noted of it goes."""
    if data.get("has_scheduled_changes") is True:
        return {"has_scheduled_changes": True}  # scheduled_change (what was asked for) is kept
    return {"has_scheduled_changes": False, "scheduled_change": {}}


@dataclass(frozen=True)
class SubscriptionSnapshot:
    """One Chargebee subscription as orgbilling stores it."""

    id: str
    customer_id: str
    local_id: str  # meta_data.subscriptionId: the local row checkout made, when Chargebee's id differs
    deleted: bool
    fields: dict[str, Any]  # model field -> value, the whole snapshot

    @classmethod
    def read(cls, data: Any, *, deleted: bool = False) -> SubscriptionSnapshot:
        """Read ``data``; ``deleted`` marks a snapshot known deleted even without ``deleted: true``."""
        if not isinstance(data, dict):
            raise InvalidSnapshot("subscription is not an object")
        subscription_id = _string(data, "id")
        customer_id = _string(data, "customer_id")
        deleted = deleted or data.get("deleted") is True
        status = data.get("status")
        if status not in Subscription.Status.values:
            raise InvalidSnapshot(f"subscription status {status!r} is not one orgbilling knows")
        if deleted and status not in CLOSED_STATUSES:
            status = Subscription.Status.CANCELLED
        items = _items(data)
        plan = next((item for item in items if item["item_type"] == "plan"), None)
        cancelled_at = _time(data, "cancelled_at")
        scheduled = data.get("cancel_schedule_created_at") is not None or cancelled_at is not None
        local_id = meta_value(data.get("meta_data"), "subscriptionId")
        return cls(
            id=subscription_id,
            customer_id=customer_id,
            local_id=local_id if isinstance(local_id, str) else "",
            deleted=deleted,
            fields={
                "chargebee_customer_id": customer_id,
                "status": status,
                "plan_id": plan["item_price_id"] if plan else "",
                "seats": plan["quantity"] if plan and plan["quantity"] is not None else 1,
                "items": items,
                "trial_start": _time(data, "trial_start"),
                "trial_end": _time(data, "trial_end"),
                "current_period_start": _time(data, "current_term_start"),
                "current_period_end": _time(data, "current_term_end"),
                "cancel_at_period_end": status not in CLOSED_STATUSES
                and (status == Subscription.Status.NON_RENEWING or scheduled),
                "cancelled_at": cancelled_at,
                # When Chargebee bills next (absent once nothing renews: cancelled, or cancelling at term end).
                "next_billing_at": _time(data, "next_billing_at"),
                **_scheduled_changes(data),
                "resource_version": _integer(
                    data.get("resource_version"), "subscription resource_version", MAX_VERSION
                ),
                **_dues(data),
            },
        )
