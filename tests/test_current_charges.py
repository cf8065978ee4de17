"""The billing page's current subscription: seats x unit price per period, and the next charge Chargebee estimated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from orgbilling.models import ItemPrice, Organization, Subscription

pytestmark = pytest.mark.django_db

PLAN = "team-plan-USD-monthly"
NEXT = datetime(2031, 3, 14, tzinfo=UTC)


@pytest.fixture
def browser(scalekit):
    return scalekit.sign_in(Client())


def subscription(**fields) -> Subscription:
    organization = Organization.objects.create(id="org_1", display_name="Acme", chargebee_customer_id="org_1")
    values = {
        "status": "active",
        "plan_id": PLAN,
        "seats": 3,
        "items": [{"item_price_id": PLAN, "item_type": "plan", "quantity": 3, "unit_price": 1200}],
        "currency": "USD",
        "chargebee_subscription_id": "cb_1",
        "current_period_end": NEXT,
        "next_billing_at": NEXT,
        "resource_version": 5,
        **fields,
    }
    return Subscription.objects.create(organization=organization, **values)


def price(**fields) -> ItemPrice:
    values = {
        "id": PLAN,
        "external_name": "Team",
        "status": "active",
        "currency": "USD",
        "price": 1500,
        "pricing_model": "per_unit",
        "period": 1,
        "period_unit": "month",
        **fields,
    }
    price_id = values.pop("id")  # conftest mirrors the default plan already: this test's copy replaces it
    return ItemPrice.objects.update_or_create(id=price_id, defaults=values)[0]


def current(browser) -> str:
    html = browser.get("/billing").content.decode()
    return html[html.index('id="ob-current"') : html.index("</section>")]


def test_seats_times_the_price_this_subscription_pays_per_period_and_the_estimated_next_charge(browser):
    price()  # the catalog's price moved on to $15.00: the subscription still pays $12.00
    subscription(renewal_amount=3240, renewal_estimate_version=5)  # Chargebee's figure (a discount), not 3 x 12
    block = current(browser)
    assert "Team" in block and "3 × $12.00 per month" in block
    assert "$32.40 on" in block and 'datetime="2031-03-14T00:00:00+00:00"' in block
    assert "being updated" not in block and "being worked out" not in block


def test_a_figure_older_than_the_last_change_is_marked_and_a_missing_one_said_to_come(browser):
    row = subscription(renewal_amount=3600, renewal_estimate_version=4)
    assert "$36.00 on" in (block := current(browser)) and "being updated" in block
    Subscription.objects.filter(pk=row.pk).update(renewal_amount=None, renewal_estimate_version=None)
    assert "the amount is being worked out" in current(browser)


def test_an_archived_price_still_names_the_plan_and_its_price(browser):
    price(status="archived", external_name="Team (2030)", price=900, period=3)
    subscription(items=[{"item_price_id": PLAN, "item_type": "plan", "quantity": 3}])
    block = current(browser)
    assert "Team (2030)" in block and "3 × $9.00 per 3 months" in block


def test_a_scheduled_cancellation_shows_its_date_and_no_next_charge(browser):
    subscription(
        status="non_renewing",
        cancel_at_period_end=True,
        cancelled_at=NEXT,
        next_billing_at=None,
        renewal_amount=3600,
        renewal_estimate_version=4,
    )
    block = current(browser)
    assert "This subscription cancels on" in block and "Next charge" not in block


def test_the_page_calls_no_chargebee(browser, fake_chargebee):
    subscription()  # no estimate yet: the page says so, and fetches nothing
    assert "being worked out" in current(browser) and fake_chargebee.calls() == []


def test_a_trial_shows_its_end_and_the_first_charge(browser):
    trial_end = datetime(2031, 2, 1, tzinfo=UTC)
    subscription(
        status="in_trial",
        trial_end=trial_end,
        next_billing_at=trial_end,
        renewal_amount=3600,
        renewal_estimate_version=5,
        current_period_end=None,
    )
    block = current(browser)
    assert "Trial ends" in block and "$36.00 on" in block and 'datetime="2031-02-01T00:00:00+00:00"' in block


def test_the_page_reads_the_price_once_with_the_catalog(browser):
    """The offer's read of the catalog (one query) gives the current charges their price too."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    subscription()
    price()
    with CaptureQueriesContext(connection) as queries:
        html = current(browser)
    assert "3 × $12.00 per month" in html and "Team" in html
    assert sum('"orgbilling_itemprice"' in query["sql"] for query in queries.captured_queries) == 1
