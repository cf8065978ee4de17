"""Chargebee payloads for tests: the vendor's PC 1.0 event samples, and PC 2.0 bodies built the same way.

The PC 2.0 builders follow the shape of the vendor samples (and of
sandbox/fake_chargebee.py): an event envelope whose ``content`` holds the
whole subscription and its customer.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator

from orgbilling import signals
from tests.conftest import CHARGEBEE_PASSWORD, CHARGEBEE_USER, sample

PLAN = "team-plan-USD-monthly"
ORG_ID, CUSTOMER_ID = "org_acme", "cust_acme"
START = 1_767_225_600  # 2026-01-01T00:00:00Z
MONTH = 30 * 86400
SIGNAL_NAMES = (
    "subscription_complete",
    "subscription_updated",
    "subscription_cancelled",
    "subscription_deleted",
    "trial_started",
    "trial_ended",
)

_event_ids = itertools.count(1)


def vendor_event(event_type: str) -> dict:
    """A vendor-written event body from tests/fixtures, as it is."""
    return sample(f"chargebee/events/{event_type}.json")


def basic_auth(username: str = CHARGEBEE_USER, password: str = CHARGEBEE_PASSWORD) -> dict:
    """Test-client kwargs carrying HTTP Basic Auth credentials."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def post_event(client, payload: dict | bytes, **headers):
    """POST a delivery to the Chargebee endpoint with the configured credentials.

    ``HTTP_AUTHORIZATION`` in ``headers`` replaces them; None sends no Authorization header.
    """
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {**basic_auth(), **headers}
    if headers["HTTP_AUTHORIZATION"] is None:
        del headers["HTTP_AUTHORIZATION"]
    return client.post("/api/webhooks/chargebee", body, content_type="application/json", **headers)


def pc2_customer(customer_id: str = CUSTOMER_ID, *, meta_data: dict | str | None = None) -> dict:
    customer = {
        "id": customer_id,
        "company": "Acme",
        "auto_collection": "on",
        "created_at": START,
        "resource_version": START * 1000,
        "deleted": False,
        "object": "customer",
        "card_status": "valid",
        "preferred_currency_code": "USD",
    }
    if meta_data is not None:
        customer["meta_data"] = meta_data
    return customer


def pc2_subscription(
    subscription_id: str = "sub_cb_1",
    *,
    customer_id: str = CUSTOMER_ID,
    status: str = "active",
    version: int = 1,
    seats: int = 3,
    plan: str = PLAN,
    addons: tuple[str, ...] = (),
    **fields,
) -> dict:
    """A PC 2.0 subscription; ``version`` n gives resource_version START*1000 + n."""
    items = [{"item_price_id": plan, "item_type": "plan", "quantity": seats, "unit_price": 1200}]
    items += [{"item_price_id": addon, "item_type": "addon", "quantity": 1, "unit_price": 500} for addon in addons]
    subscription = {
        "id": subscription_id,
        "customer_id": customer_id,
        "status": status,
        "subscription_items": [dict(item, object="subscription_item") for item in items],
        "billing_period": 1,
        "billing_period_unit": "month",
        "currency_code": "USD",
        "created_at": START,
        "started_at": START,
        "updated_at": START + version,
        "resource_version": START * 1000 + version,
        "has_scheduled_changes": False,
        "deleted": False,
        "object": "subscription",
    }
    if status in ("active", "non_renewing", "paused"):
        subscription.update(current_term_start=START, current_term_end=START + MONTH, activated_at=START)
    if status == "in_trial":
        subscription.update(trial_start=START, trial_end=START + 14 * 86400)
    subscription.update(fields)
    return subscription


def pc2_event(
    event_type: str, subscription: dict | None = None, customer: dict | None = None, *, event_id: str = ""
) -> dict:
    """An event envelope carrying ``subscription`` and its customer (built when not given)."""
    content: dict = {}
    if subscription is not None:
        content["subscription"] = subscription
    content["customer"] = customer or pc2_customer(subscription["customer_id"] if subscription else CUSTOMER_ID)
    return {
        "id": event_id or f"ev_test_{next(_event_ids)}",
        "occurred_at": START,
        "source": "api",
        "object": "event",
        "api_version": "v2",
        "event_type": event_type,
        "webhook_status": "scheduled",
        "content": content,
    }


def renewal(prefix: str, number: int, version: int) -> dict:
    """Renewal ``version`` of subscription ``sub_{prefix}{number}`` (customer ``cust_{prefix}{number}``).

    Each renewal starts the next month's term with a newer resource_version,
    so after any order of delivery the last one's term must be the stored one.
    """
    term_start = START + version * MONTH
    subscription = pc2_subscription(
        f"sub_{prefix}{number}",
        customer_id=f"cust_{prefix}{number}",
        version=version,
        current_term_start=term_start,
        current_term_end=term_start + MONTH,
    )
    customer = pc2_customer(f"cust_{prefix}{number}")
    return pc2_event("subscription_renewed", subscription, customer, event_id=f"ev_{prefix}{number}_{version}")


class SignalLog(list):
    """Every orgbilling signal sent while connected, as (name, subscription id, previous status)."""

    def __enter__(self) -> SignalLog:
        for name in SIGNAL_NAMES:
            getattr(signals, name).connect(self._receiver(name), weak=False, dispatch_uid=f"test-{name}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in SIGNAL_NAMES:
            getattr(signals, name).disconnect(dispatch_uid=f"test-{name}")

    def _receiver(self, name: str):
        def receive(sender, organization, subscription, previous_status, **kwargs):
            assert organization.pk == subscription.organization_id
            self.append((name, subscription.pk, previous_status))

        return receive

    def names(self) -> list[str]:
        return [name for name, _, _ in self]


def signal_log() -> Iterator[SignalLog]:
    """Fixture body (``sent = pytest.fixture(signal_log, name="sent")``): the signals a test sent."""
    with SignalLog() as log:
        yield log
