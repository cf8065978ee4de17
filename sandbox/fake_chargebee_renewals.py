"""Next charges and undoing a scheduled cancellation in the fake Chargebee.

`GET /subscriptions/{id}/renewal_estimate` answers an `estimate` shaped like Chargebee's (the sample
on its Estimates API page): `subscription_estimate` and an `invoice_estimate` whose line items are the
subscription's items at their unit prices for the term after `next_billing_at`. As on Chargebee, a
cancelled subscription is refused and a non_renewing one renews nothing (no delayed charges here: an
empty, zero estimate). `POST /subscriptions/{id}/remove_scheduled_cancellation` takes a non_renewing
subscription back to active (or in_trial, when it was cancelled during its trial) and records
`subscription_scheduled_cancellation_removed`, which the sandbox sends as a webhook like every event.
Cancelling at the term end (`cancel_for_items` with `end_of_term=true`) is the fake's existing
`cancel_subscription`, which records `subscription_cancellation_scheduled`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.fake_chargebee_store import Body, Store, add_month, invalid_state

RENEWING = ("future", "in_trial", "active")


def renewal_line_items(sub: Body, starts_at: int) -> list[Body]:
    """The subscription's items billed for the term starting at `starts_at`."""
    ends_at = add_month(starts_at)
    return [
        {
            "date_from": starts_at,
            "date_to": ends_at,
            "unit_amount": item.get("unit_price", 0),
            "quantity": item.get("quantity") or 1,
            "amount": item.get("unit_price", 0) * (item.get("quantity") or 1),
            "is_taxed": False,
            "tax_amount": 0,
            "discount_amount": 0,
            "item_level_discount_amount": 0,
            "description": item["item_price_id"],
            "entity_type": f"{item['item_type']}_item_price",
            "entity_id": item["item_price_id"],
            "subscription_id": sub["id"],
            "object": "line_item",
        }
        for item in sub.get("subscription_items", [])
    ]


class RenewalsMixin:
    store: Store
    _changes: Callable[..., Any]
    _live_subscription: Callable[..., Body]
    _save_change: Callable[..., Body]
    with_customer: Callable[[Body], Body]

    def renewal_estimate(self, sub_id: str) -> Body:
        """What the subscription's next billing will charge, as Chargebee estimates it."""
        with self.store.transaction():
            sub = self.store.require("subscription", sub_id)
        if sub["status"] not in (*RENEWING, "non_renewing"):
            raise invalid_state(f"Renewal estimate is not supported for {sub['status']} subscription {sub_id}")
        starts_at = sub.get("next_billing_at") or sub.get("current_term_end") or sub.get("trial_end") or 0
        lines = renewal_line_items(sub, starts_at) if sub["status"] in RENEWING else []
        total = sum(line["amount"] for line in lines)
        currency = sub.get("currency_code", "USD")
        subscription_estimate = {"id": sub_id, "status": sub["status"], "currency_code": currency}
        if sub["status"] in RENEWING:
            subscription_estimate["next_billing_at"] = starts_at
        return {
            "created_at": self.store.now(),
            "object": "estimate",
            "subscription_estimate": {**subscription_estimate, "object": "subscription_estimate"},
            "invoice_estimate": {
                "recurring": True,
                "price_type": "tax_exclusive",
                "sub_total": total,
                "total": total,
                "credits_applied": 0,
                "amount_paid": 0,
                "amount_due": total,
                "object": "invoice_estimate",
                "line_items": lines,
                "taxes": [],
                "line_item_taxes": [],
                "line_item_discounts": [],
                "currency_code": currency,
            },
        }

    def remove_scheduled_cancellation(self, sub_id: str, source: str = "admin_console") -> Body:
        """Keep a subscription that was to cancel at its term end: back to active (or in_trial)."""
        with self._changes() as events:
            sub = self._live_subscription(sub_id)
            if sub["status"] != "non_renewing":
                raise invalid_state(f"Subscription {sub_id} has no scheduled cancellation")
            for key in ("cancelled_at", "cancel_schedule_created_at", "cancel_reason"):
                sub.pop(key, None)
            trial_end = sub.get("trial_end")
            if trial_end and trial_end > self.store.now() and not sub.get("activated_at"):
                sub.update(status="in_trial", next_billing_at=trial_end)
            else:
                sub.update(status="active", next_billing_at=sub["current_term_end"])
            return self._save_change(events, sub, "subscription_scheduled_cancellation_removed", source)

    def _renewal_estimate(self, request: Any, sub_id: str) -> Body:
        return {"estimate": self.renewal_estimate(sub_id)}

    def _remove_scheduled_cancellation(self, request: Any, sub_id: str) -> Body:
        return self.with_customer(self.remove_scheduled_cancellation(sub_id, source="api"))


ROUTES: list[tuple[str, str, Callable[..., Body]]] = [
    ("GET", r"/subscriptions/([^/]+)/renewal_estimate", RenewalsMixin._renewal_estimate),
    ("POST", r"/subscriptions/([^/]+)/remove_scheduled_cancellation", RenewalsMixin._remove_scheduled_cancellation),
]
