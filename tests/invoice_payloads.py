"""Invoice payloads for tests: variants of the invoice in Chargebee's own ``payment_failed`` sample.

Each builder copies the vendor-written invoice (tests/fixtures/chargebee/events/payment_failed.json)
and changes only what a test needs, so the shape stays Chargebee's.
"""

from __future__ import annotations

import copy
import itertools

from tests.chargebee_payloads import CUSTOMER_ID, START, pc2_customer, vendor_event

_event_ids = itertools.count(1)


def invoice(
    invoice_id: str = "inv_1",
    *,
    customer_id: str = CUSTOMER_ID,
    subscription_id: str | None = "sub_cb_1",
    status: str = "paid",
    version: int = 1,
    total: int = 4500,
    date: int = START,
    **fields,
) -> dict:
    """The vendor's invoice as ``invoice_id``; ``version`` n gives resource_version START*1000 + n."""
    data = copy.deepcopy(vendor_event("payment_failed")["content"]["invoice"])
    due = status in ("payment_due", "not_paid")
    data.update(
        id=invoice_id,
        customer_id=customer_id,
        subscription_id=subscription_id,
        status=status,
        date=date,
        due_date=date,
        total=total,
        amount_paid=0 if due else total,
        amount_due=total if due else 0,
        updated_at=START + version,
        resource_version=START * 1000 + version,
    )
    if not due:
        data.pop("dunning_status", None)
    if subscription_id is None:
        data.pop("subscription_id")
    data.update(fields)
    return data


def invoice_event(event_type: str, data: dict, *, subscription: dict | None = None, event_id: str = "") -> dict:
    """An event carrying ``data`` (and the subscription, as Chargebee's payment events do)."""
    content = {"invoice": data, "customer": pc2_customer(data["customer_id"])}
    if subscription is not None:
        content["subscription"] = subscription
    return {
        "id": event_id or f"ev_inv_{next(_event_ids)}",
        "occurred_at": START,
        "source": "api",
        "object": "event",
        "api_version": "v2",
        "event_type": event_type,
        "webhook_status": "scheduled",
        "content": content,
    }
