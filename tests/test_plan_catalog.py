"""ORGBILLING_PLANS against the mirrored prices: what is on offer, what choose() accepts, the catalog's checks."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from orgbilling import checkout, plans
from orgbilling.catalog_checks import check_offered_prices, offered_price_problems
from orgbilling.errors import BillingProblem
from orgbilling.models import ItemPrice, Organization, Subscription
from tests.billing_support import context_for
from tests.conftest import mirror_price

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(settings):
    settings.ORGBILLING_PLANS = [
        {"id": "team-USD-monthly", "name": "Team", "max_seats": 50},
        {"id": "team-JPY-monthly"},
        {"id": "old-USD-monthly", "name": "Old"},
        {"id": "never-synced"},
    ]
    mirror_price("team-USD-monthly", item_id="team")
    mirror_price("team-JPY-monthly", item_id="team", currency="JPY", external_name="Team (yen)")
    mirror_price("old-USD-monthly", status="archived")
    return settings


def ids(found) -> list[str]:
    return [plan.id for plan in found]


def test_only_configured_prices_active_in_chargebee_are_on_offer(catalog):
    assert ids(plans.offered()) == ["team-USD-monthly", "team-JPY-monthly"]
    assert ids(plans.offered("jpy")) == ["team-JPY-monthly"]
    assert plans.offered()[1].name == "Team (yen)"  # no name configured: Chargebee's external name
    assert plans.unavailable() == [
        ("old-USD-monthly", "archived in Chargebee"),
        ("never-synced", "missing from the local catalog (never synced, or not in Chargebee)"),
    ]


def test_choose_refuses_prices_not_on_offer_and_other_currencies(catalog):
    plan, seats = plans.choose("team-USD-monthly", "3")
    assert (plan.id, seats, plan.price.price, plan.currency) == ("team-USD-monthly", 3, 1500, "USD")
    for refused in ("old-USD-monthly", "never-synced", "nope"):
        with pytest.raises(plans.InvalidPlan, match="Unknown plan, or no longer offered"):
            plans.choose(refused, 1)
    with pytest.raises(plans.InvalidPlan, match="billed in USD"):
        plans.choose("team-JPY-monthly", 1, currency="USD")
    ItemPrice.objects.filter(pk="team-USD-monthly").update(deleted_at=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(plans.InvalidPlan, match="No plan is offered in USD"):
        plans.choose(None, 1, currency="USD")


def test_a_subscription_on_an_archived_price_still_shows_its_name_and_price(catalog, settings):
    old = plans.describe("old-USD-monthly")
    assert (old.name, old.price.price, old.available) == ("Old", 1500, False)
    settings.ORGBILLING_PLANS = [{"id": "team-USD-monthly"}]
    gone = plans.describe("old-USD-monthly")  # no longer configured: Chargebee's name
    assert (gone.name, gone.configured, gone.price.status) == ("old-USD-monthly", False, "archived")
    assert plans.describe("unknown") is None


@pytest.mark.parametrize("key", ["trial_days", "price", "currency"])
def test_prices_and_trials_in_settings_are_refused(settings, key):
    settings.ORGBILLING_PLANS = [{"id": "team", key: 14}]
    with pytest.raises(ImproperlyConfigured, match=f"unknown key.*{key}.*come from the Chargebee item price"):
        plans.catalog()


def test_a_change_stays_in_the_subscriptions_currency(catalog, fake_chargebee):
    organization = Organization.objects.create(id="org_1", display_name="Acme", chargebee_customer_id="org_1")
    subscription = Subscription.objects.create(
        organization=organization,
        chargebee_subscription_id="sub_1",
        status="active",
        plan_id="team-USD-monthly",
        seats=2,
        currency="USD",
    )
    with pytest.raises(BillingProblem, match="billed in USD") as caught:
        checkout.change_subscription(context_for(), subscription_id=subscription.id, plan_id="team-JPY-monthly")
    assert caught.value.status == 400 and fake_chargebee.calls() == []
    subscription.plan_id = "old-USD-monthly"
    subscription.save()
    with pytest.raises(BillingProblem, match="no longer offered"):  # not even a seat change on an archived price
        checkout.change_subscription(context_for(), subscription_id=subscription.id, seats=3)


def test_an_organization_that_had_a_trial_gets_none(fake_chargebee):
    organization = Organization.objects.create(id="org_1", display_name="Acme", chargebee_customer_id="org_1")
    fake_chargebee.create_customer("org_1")
    checkout.start_checkout(context_for(), seats=2)
    [first] = fake_chargebee.calls("POST", "/hosted_pages/checkout_new_for_items")
    assert "subscription[trial_end]" not in first.params  # the item price's trial applies
    Subscription.objects.filter(organization=organization).update(
        status="cancelled", trial_start=datetime(2025, 1, 1, tzinfo=UTC), chargebee_subscription_id="sub_old"
    )
    checkout.start_checkout(context_for(), seats=2)
    second = fake_chargebee.calls("POST", "/hosted_pages/checkout_new_for_items")[-1]
    assert second.params["subscription[trial_end]"] == "0"


# -- the database check ------------------------------------------------------------------------------


def messages() -> set[str]:
    return {message.id for message in offered_price_problems()}


def test_the_database_check_reports_offered_prices_chargebee_does_not_sell(catalog):
    assert messages() == {"orgbilling.W030"}
    assert len(offered_price_problems()) == 2
    assert check_offered_prices(databases=None) == []  # plain `check`: no database, nothing read
    # Django 6.1 passes every database to checks run by tag (the WSGI start): only `check --database` runs it.
    assert check_offered_prices(databases=["default"]) == []
    ItemPrice.objects.filter(currency__in=["USD", "JPY"]).update(status="archived")
    assert messages() == {"orgbilling.W030", "orgbilling.E030"}


def test_check_database_reports_it_and_migrate_does_not(catalog, settings):
    settings.DEBUG = False
    ItemPrice.objects.all().delete()
    with pytest.raises(SystemCheckError, match="orgbilling.E030"):
        call_command("check", "--database", "default", "--tag", "orgbilling", stdout=io.StringIO())
    call_command("check", "--tag", "orgbilling", stdout=io.StringIO())  # no database asked: not run
    settings.DEBUG = True  # (the sandbox's own check refuses DEBUG off)
    out = io.StringIO()
    call_command("migrate", skip_checks=False, stdout=out, stderr=out)  # runs the checks, with its database
    assert "orgbilling.W030" not in out.getvalue() and "orgbilling.E030" not in out.getvalue()
    out = io.StringIO()
    call_command("check", "--database", "default", stdout=out, stderr=out)
    assert "orgbilling.W030" in out.getvalue() and "orgbilling.E030" in out.getvalue()


def test_the_sync_pass_names_offered_prices_it_did_not_find(catalog, monkeypatch):
    monkeypatch.setattr(
        "orgbilling.prices.get_gateway", lambda: type("G", (), {"iter_item_prices": lambda s, **k: []})()
    )
    out = io.StringIO()
    call_command("orgbilling_sync", "--prices", "--since", "1h", stdout=out)
    assert "offered in ORGBILLING_PLANS but archived in Chargebee, hidden: old-USD-monthly" in out.getvalue()
    assert "hidden: never-synced" in out.getvalue()
