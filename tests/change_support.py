"""Fixtures of the previewed-change tests: a fake Chargebee with prices and a clock, and org_1 subscribed to it.

Registered in conftest.py (``pytest_plugins``) so every test module may use them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orgbilling import provisioning
from orgbilling.models import BillingProfile, Subscription
from orgbilling.subscription_sync import apply_subscription
from sandbox.fake_chargebee import FakeChargebee, serve

PLAN, PRO = "team-plan-USD-monthly", "pro-plan-USD-monthly"
PRICES = {PLAN: {"price": 1000, "item_type": "plan"}, PRO: {"price": 3000, "item_type": "plan"}}
APRIL_1 = datetime(2026, 4, 1, tzinfo=UTC).timestamp()  # a 30-day term
DAY = 86400


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def chargebee_clock() -> Clock:
    # Not `clock`: that one (tests/timing.py) is the JWKS and token clock every module shares.
    return Clock(APRIL_1)


@pytest.fixture
def change_fake(settings, chargebee_clock):
    settings.ORGBILLING_PLANS = [{"id": PLAN, "name": "Team"}, {"id": PRO, "name": "Pro"}]
    fake = FakeChargebee(item_prices=PRICES, clock=chargebee_clock)
    server = serve(fake)
    settings.CHARGEBEE_API_BASE_URL = server.url
    yield fake
    fake.close()
    server.stop()


@pytest.fixture
def change_row(change_fake, chargebee_clock) -> Subscription:
    """org_1 subscribed to 3 Team seats on April 1 with a valid card, mirrored here; now it is April 16."""
    provisioning.ensure_customer("org_1", "Acme")
    fake = change_fake
    sub = fake.create_subscription("org_1", PLAN, 3, id="cb_sub_1")
    fake.add_card("org_1", "4242424242424242")  # the customer's card_status is now "valid"
    applied = apply_subscription(sub, fake.get_customer("org_1")).subscription
    assert BillingProfile.objects.get(organization_id="org_1").card_status == "valid"
    chargebee_clock.now += 15 * DAY
    fake.reset_calls()
    return applied
