"""The fake Chargebee's item prices through the real SDK and orgbilling's gateway: listed, changed, sold."""

from __future__ import annotations

import pytest

from sandbox.fake_chargebee import FakeChargebee
from sandbox.fake_chargebee_prices import charge, item_price_object
from tests.test_fake_chargebee import cb, open_checkout, server, vendor_settings  # noqa: F401  (fixtures)

TEAM = item_price_object("team-USD-monthly", item_id="team", external_name="Team", price=1500, trial_period=14)
TIERS = [{"starting_unit": 1, "ending_unit": 10, "price": 1200}, {"starting_unit": 11, "price": 1000}]
BUSINESS = item_price_object("business-USD-monthly", item_id="business", external_name="Business",
                             pricing_model="volume", tiers=TIERS)  # fmt: skip
YEN = item_price_object("team-JPY-monthly", item_id="team", external_name="Team", currency_code="JPY", price=1500)


@pytest.fixture
def fake():
    fake = FakeChargebee(item_prices={})
    fake.seed_item_prices([TEAM, BUSINESS, YEN])
    return fake


def test_list_filters_and_retrieve(cb, fake):  # noqa: F811
    listed = cb.ItemPrice.list({"limit": 100, "item_type[is]": "plan"}).list
    assert {entry.item_price.id for entry in listed} == {"team-USD-monthly", "business-USD-monthly", "team-JPY-monthly"}
    yen = cb.ItemPrice.list({"currency_code[is]": "JPY"}).list
    assert [entry.item_price.id for entry in yen] == ["team-JPY-monthly"]
    team = cb.ItemPrice.retrieve("team-USD-monthly").item_price
    assert (team.price, team.period_unit, team.trial_period, team.trial_period_unit) == (1500, "month", 14, "day")
    assert cb.ItemPrice.retrieve("business-USD-monthly").item_price.tiers[1].price == 1000


def test_the_gateway_pages_100_at_a_time(fake, server, settings):  # noqa: F811
    from orgbilling.chargebee_gateway import get_gateway

    settings.CHARGEBEE_API_BASE_URL = server.url
    for number in range(150):
        fake.put_item_price(item_price_object(f"p{number}", item_id=f"i{number}", external_name="P", price=100))
    fake.reset_calls()
    listed = list(get_gateway().iter_item_prices())
    assert len(listed) == 153
    calls = fake.calls("GET", "/item_prices")
    assert [call.params.get("limit") for call in calls] == ["100", "100"]
    assert calls[0].params["item_type[is]"] == "plan" and "offset" in calls[1].params


def test_console_changes_record_the_item_price_events(fake):
    seen = []
    fake.on_event(lambda event: seen.append((event["event_type"], event["content"]["item_price"]["status"])))
    fake.update_item_price("team-USD-monthly", price=1800)
    fake.archive_item_price("team-JPY-monthly")
    fake.delete_item_price("business-USD-monthly")
    assert seen == [
        ("item_price_updated", "active"),
        ("item_price_updated", "archived"),
        ("item_price_deleted", "deleted"),
    ]
    assert fake.get_item_price("team-USD-monthly")["price"] == 1800


def test_checkout_uses_the_stored_price_trial_and_currency_and_refuses_an_archived_one(cb, fake):  # noqa: F811
    cb.Customer.create({"id": "org_1"})
    page = open_checkout(cb, sub_id="sub_yen", item_price_id="team-JPY-monthly", quantity=2)
    sub = fake.complete_hosted_page(page.id)["content"]["subscription"]
    assert (sub["currency_code"], sub["status"], sub["subscription_items"][0]["amount"]) == ("JPY", "active", 3000)
    page = open_checkout(cb, sub_id="sub_trial", customer_id="org_1", item_price_id="team-USD-monthly")
    assert fake.complete_hosted_page(page.id)["content"]["subscription"]["status"] == "in_trial"
    fake.archive_item_price("business-USD-monthly")
    with pytest.raises(Exception, match="archived"):
        open_checkout(cb, sub_id="sub_b", customer_id="org_1", item_price_id="business-USD-monthly")


@pytest.mark.parametrize(
    ("model", "seats", "amount"),
    [("volume", 12, 12000), ("volume", 3, 3600), ("tiered", 12, 12000 + 2000), ("stairstep", 12, 1000)],
)
def test_tiers_charge_as_chargebee_documents(model, seats, amount):
    assert charge({"pricing_model": model, "tiers": TIERS}, seats) == amount
