"""Plan cards on /billing and /api/plans: prices in the customer's money, currency groups, the period switch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from orgbilling.models import ItemPrice, Organization, Subscription
from tests.conftest import mirror_price

pytestmark = pytest.mark.django_db

TIERS = [
    {"starting_unit": 1, "ending_unit": 10, "price": 2500},
    {"starting_unit": 11, "ending_unit": None, "price": 2000},
]


@pytest.fixture
def catalog(settings):
    settings.ORGBILLING_PLANS = [
        {"id": "team-USD-monthly", "name": "Team", "max_seats": 50},
        {"id": "team-USD-yearly", "name": "Team", "max_seats": 50},
        {"id": "business-USD-monthly", "name": "Business", "min_seats": 5},
        {"id": "team-EUR-monthly", "name": "Team"},
        {"id": "team-JPY-monthly", "name": "Team"},
    ]
    mirror_price("team-USD-monthly", item_id="team", price=4500, trial_period=14, trial_period_unit="day")
    mirror_price("team-USD-yearly", item_id="team", price=45000, period_unit="year", trial_period=None)
    mirror_price("business-USD-monthly", item_id="business", pricing_model="volume", price=None, tiers=TIERS)
    mirror_price("team-EUR-monthly", item_id="team", currency="EUR", price=4500)
    mirror_price("team-JPY-monthly", item_id="team", currency="JPY", price=1500)
    return settings


@pytest.fixture
def browser(scalekit, client):
    scalekit.sign_in(client, roles=["admin"])
    return client


def page(browser, query: str = "") -> str:
    response = browser.get(f"/billing{query}")
    assert response.status_code == 200
    return response.content.decode()


def subscribe(organization_id: str = "org_1", plan_id: str = "team-USD-monthly", **fields) -> Subscription:
    organization, _ = Organization.objects.get_or_create(id=organization_id, defaults={"display_name": "Acme"})
    values = {"status": "active", "plan_id": plan_id, "seats": 3, "chargebee_subscription_id": "cb_1"}
    return Subscription.objects.create(organization=organization, **{**values, **fields})


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en-us", ["$45.00", "¥1,500"]), ("de", ["45,00\xa0€", "1.500\xa0¥"]), ("ja", ["¥1,500", "€45.00"])],
)
def test_prices_are_written_in_the_active_language(browser, catalog, language, expected):
    with translation.override(language):
        html = page(browser)
    for text in expected:
        assert text in html


def test_without_a_subscription_each_currency_is_grouped_with_a_heading(browser, catalog):
    html = page(browser)
    positions = [html.index(f'id="ob-plans-{code}"') for code in ("usd", "eur", "jpy")]
    assert positions == sorted(positions)
    assert "US dollars (USD)" in html and "Japanese yen (JPY)" in html
    assert "14-day free trial for new customers" in html
    assert 'name="plan"' in html and "Team · $45.00 per seat per month" in html  # the form offers every price


def test_the_period_switch_is_a_pair_of_links_and_shows_the_yearly_saving(browser, catalog):
    monthly = page(browser)
    assert 'href="?period=year#ob-plans"' in monthly and 'aria-current="true">Monthly' in monthly
    assert "$450.00" not in monthly.split('id="ob-plans"')[1].split("</section>")[0]
    yearly = page(browser, "?period=year")
    cards = yearly.split('id="ob-plans"')[1]
    assert "$450.00" in cards and "per seat per year" in cards
    assert "Save 17% ($90.00 a year) against monthly billing." in cards
    assert "$25.00" in cards and "11 or more" in cards and "<caption>" in cards  # Business: monthly only, always shown
    unknown = page(browser, "?period=decade")  # an unknown period is the default, not an error
    assert unknown.split('id="ob-plans"')[1] == monthly.split('id="ob-plans"')[1]


def test_with_a_subscription_only_its_currency_is_offered_and_no_trial(browser, catalog):
    subscribe(currency="USD")
    html = page(browser)
    assert "¥1,500" not in html and "€" not in html
    assert "billed in USD" in html and "trial" not in html
    assert "Your current plan" in html and "$45.00 per seat per month" in html


def test_the_change_form_selects_the_subscriptions_plan_and_the_subscribe_form_none(browser, catalog):
    def selected(html: str) -> list[str]:
        select = html[html.index('name="plan"') : html.index("</select>")]
        return [part.split('"', 1)[0] for part in select.split('<option value="')[1:] if '" selected>' in part]

    assert selected(page(browser)) == []
    subscribe(plan_id="team-USD-yearly", currency="USD")
    assert selected(page(browser)) == ["team-USD-yearly"]


def test_an_archived_plan_still_shows_its_name_and_price_but_is_not_offered(browser, catalog):
    subscribe(plan_id="team-USD-monthly", currency="USD")
    ItemPrice.objects.filter(pk="team-USD-monthly").update(status="archived")
    html = page(browser)
    current = html.split('id="ob-current"')[1].split("</section>")[0]
    assert "<dd>Team</dd>" in current and "$45.00" in current
    assert 'value="team-USD-monthly"' not in html and 'value="team-USD-yearly"' in html


def test_an_organization_that_had_a_trial_is_shown_none(browser, catalog):
    subscribe(status="cancelled", trial_start=datetime(2025, 1, 1, tzinfo=UTC))
    assert "free trial" not in page(browser)


def test_api_plans_lists_the_offered_prices_as_the_page_shows_them(browser, catalog):
    body = browser.get("/api/plans").json()
    assert body["currency"] is None and body["periods"] == ["month", "year"] and body["period"] == "month"
    by_id = {plan["id"]: plan for plan in body["plans"]}
    assert list(by_id) == [
        "team-USD-monthly",
        "team-USD-yearly",
        "business-USD-monthly",
        "team-EUR-monthly",
        "team-JPY-monthly",
    ]
    team = by_id["team-USD-monthly"]
    assert (team["price"], team["priceFormatted"], team["currency"], team["pricingModel"]) == (
        4500,
        "$45.00",
        "USD",
        "per_unit",
    )
    assert team["trial"] == {"period": 14, "unit": "day", "label": "14-day free trial"}
    assert (team["minSeats"], team["maxSeats"], team["periodUnit"]) == (1, 50, "month")
    assert by_id["team-USD-yearly"]["yearlySaving"] == {"amount": 9000, "amountFormatted": "$90.00", "percent": 17}
    business = by_id["business-USD-monthly"]
    assert business["price"] is None and business["tiers"][1] == {
        "startingUnit": 11,
        "endingUnit": None,
        "price": 2000,
        "priceFormatted": "$20.00",
    }
    assert by_id["team-JPY-monthly"]["priceFormatted"] == "¥1,500"


def test_api_plans_needs_a_session(client, catalog):
    assert client.get("/api/plans").status_code == 401


def test_api_plans_keeps_to_the_subscriptions_currency(browser, catalog):
    subscribe(plan_id="team-JPY-monthly", currency="JPY")
    body = browser.get("/api/plans").json()
    assert body["currency"] == "JPY" and [plan["id"] for plan in body["plans"]] == ["team-JPY-monthly"]
    assert body["current"]["id"] == "team-JPY-monthly" and body["current"]["current"] is True


def test_the_page_reads_no_more_and_calls_nobody_however_large_the_catalog(browser, settings, fake_chargebee):
    subscribe(currency="USD")

    def queries(count: int) -> int:
        ItemPrice.objects.exclude(pk="team-plan-USD-monthly").delete()
        for number in range(count):
            mirror_price(f"p{number}-USD-monthly", item_id=f"p{number}", price=100 + number)
        settings.ORGBILLING_PLANS = [{"id": f"p{number}-USD-monthly"} for number in range(count)]
        page(browser)  # warm the middleware's per-process memo
        with CaptureQueriesContext(connection) as captured:
            html = page(browser)
        assert html.count('class="ob-plan-card') == count
        return len(captured)

    assert queries(3) == queries(40)
    assert fake_chargebee.calls() == []
