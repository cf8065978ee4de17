"""The sandbox's price catalog: the demo's prices, the console form, and the webhooks that keep the app's mirror."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from orgbilling import plans
from orgbilling.models import ItemPrice
from sandbox import runtime
from sandbox.demo_prices import DEMO_PLANS, DEMO_PRICES
from tests.sandbox_support import sandbox, served_app  # noqa: F401  (fixtures)


def test_the_demo_sells_team_monthly_and_yearly_business_tiers_and_a_yen_price():
    by_id = {price["id"]: price for price in DEMO_PRICES}
    assert [plan["id"] for plan in DEMO_PLANS] == list(by_id)
    assert {by_id["team-USD-monthly"]["period_unit"], by_id["team-USD-yearly"]["period_unit"]} == {"month", "year"}
    assert by_id["business-USD-monthly"]["pricing_model"] == "volume" and by_id["business-USD-monthly"]["tiers"]
    assert by_id["team-JPY-monthly"]["currency_code"] == "JPY"
    assert "trial_period" not in by_id["team-USD-monthly"]  # paying shows an active subscription at once


def test_the_console_changes_and_archives_a_price(client, sandbox):  # noqa: F811
    fake = runtime.chargebee()
    assert "team-USD-yearly" in client.get("/sandbox/").content.decode()
    answer = client.post("/sandbox/item-price", {"item_price_id": "team-USD-monthly", "price": "1800"})
    assert answer.status_code == 302 and fake.get_item_price("team-USD-monthly")["price"] == 1800
    client.post("/sandbox/item-price", {"item_price_id": "team-USD-monthly", "trial_days": "7"})
    assert fake.get_item_price("team-USD-monthly")["trial_period"] == 7
    client.post("/sandbox/item-price", {"item_price_id": "team-JPY-monthly", "archive": "1"})
    assert fake.get_item_price("team-JPY-monthly")["status"] == "archived"
    before = fake.get_item_price("team-USD-monthly")["resource_version"]
    client.post("/sandbox/item-price", {"item_price_id": "team-USD-monthly", "price": "-5"})
    assert fake.get_item_price("team-USD-monthly")["resource_version"] == before  # refused, nothing sent
    types = [event["event_type"] for event in fake.store.find("event", []) if "item_price" in event["content"]]
    assert types[:3] == ["item_price_updated"] * 3


@pytest.mark.django_db(transaction=True)
def test_console_changes_reach_the_page_through_webhooks(client, served_app):  # noqa: F811
    fake = runtime.chargebee()
    call_command("orgbilling_sync", "--prices", stdout=io.StringIO())  # as sandbox_demo_setup does
    assert [plan.id for plan in plans.offered()] == [plan["id"] for plan in DEMO_PLANS]
    client.post("/sandbox/item-price", {"item_price_id": "team-JPY-monthly", "archive": "1"})
    client.post("/sandbox/item-price", {"item_price_id": "team-USD-monthly", "price": "1900"})
    assert runtime.sender().wait_idle(20)
    assert ItemPrice.objects.get(pk="team-USD-monthly").price == 1900
    assert "team-JPY-monthly" not in [plan.id for plan in plans.offered()]
    assert fake.get_item_price("team-JPY-monthly")["status"] == "archived"
