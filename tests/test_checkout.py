"""The checkout service against the fake Chargebee over real HTTP, with every call counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from orgbilling import checkout, provisioning
from orgbilling.chargebee_gateway import ChargebeeError
from orgbilling.errors import BillingProblem, NotFound
from orgbilling.models import Organization, Subscription
from orgbilling.subscription_sync import apply_subscription
from tests.billing_support import context_for, page_id
from tests.chargebee_payloads import SignalLog
from tests.conftest import mirror_price

pytestmark = pytest.mark.django_db

PLAN = "team-plan-USD-monthly"


@pytest.fixture
def customer(fake_chargebee):
    """Organization org_1 with its Chargebee customer already made; the call log starts empty."""
    organization = provisioning.ensure_customer("org_1", "Acme")
    fake_chargebee.reset_calls()
    return organization


def paths(fake) -> list[tuple[str, str]]:
    return [(call.method, call.path) for call in fake.calls()]


def subscribe(fake, organization_id: str = "org_1", seats: int = 3) -> Subscription:
    """Check out and pay at the fake, then come back through the success step."""
    context = context_for(organization_id)
    hosted = checkout.start_checkout(context, seats=seats)
    fake.complete_hosted_page(page_id(hosted.url))
    checkout.complete_checkout(context, subscription_id=hosted.subscription_id, hosted_page_id=page_id(hosted.url))
    return Subscription.objects.get(pk=hosted.subscription_id)


def deliver_webhooks(events: list[dict]) -> None:
    """Apply the fake's subscription events as the Chargebee webhook does (its own tests cover the endpoint)."""
    for event in events:
        content = event["content"]
        if "subscription" in content:
            apply_subscription(content["subscription"], content.get("customer"), event_type=event["event_type"])


def test_checkout_with_an_existing_customer_costs_two_calls(customer, fake_chargebee):
    hosted = checkout.start_checkout(context_for(), seats=5)
    assert paths(fake_chargebee) == [("POST", "/customers/org_1"), ("POST", "/hosted_pages/checkout_new_for_items")]
    update, page = fake_chargebee.calls()
    assert json.loads(update.params["meta_data"]) == {
        "organizationId": "org_1",
        "customerType": "organization",
        "pendingSubscriptionId": hosted.subscription_id,
    }
    assert page.params["subscription[id]"] == hosted.subscription_id
    assert page.params["customer[id]"] == "org_1"
    assert page.params["subscription_items[item_price_id][0]"] == PLAN
    assert page.params["subscription_items[quantity][0]"] == "5"
    assert page.params["redirect_url"] == (
        f"http://testserver/api/subscription/success?subscriptionId={hosted.subscription_id}"
    )
    assert page.params["cancel_url"] == "http://testserver/billing"
    assert "subscription[trial_end]" not in page.params  # Chargebee applies the item price's own trial
    assert "card[gateway_account_id]" not in page.params
    row = Subscription.objects.get(pk=hosted.subscription_id)
    assert (row.organization_id, row.status, row.plan_id, row.seats) == ("org_1", "future", PLAN, 5)
    assert hosted.url.endswith(f"/pages/v3/{page_id(hosted.url)}/")


def test_checkout_creates_the_customer_of_an_orphan_organization(fake_chargebee):
    checkout.start_checkout(context_for("org_orphan"))
    assert paths(fake_chargebee) == [
        ("POST", "/customers"),
        ("POST", "/customers/org_orphan"),
        ("POST", "/hosted_pages/checkout_new_for_items"),
    ]
    assert Organization.objects.get(pk="org_orphan").chargebee_customer_id == "org_orphan"


def test_the_waiting_checkout_row_is_reused(customer, fake_chargebee):
    first = checkout.start_checkout(context_for(), seats=2)
    second = checkout.start_checkout(context_for(), seats=4)
    assert first.subscription_id == second.subscription_id
    assert Subscription.objects.get().seats == 4
    sent = [call.params["subscription[id]"] for call in fake_chargebee.calls("POST", "/hosted_pages/*")]
    assert sent == [first.subscription_id] * 2


def test_a_page_paid_in_an_older_tab_still_completes(customer, fake_chargebee):
    first = checkout.start_checkout(context_for(), seats=2)
    second = checkout.start_checkout(context_for(), seats=4)
    fake_chargebee.complete_hosted_page(page_id(first.url))
    checkout.complete_checkout(context_for(), subscription_id=first.subscription_id, hosted_page_id=page_id(first.url))
    row = Subscription.objects.get()
    opened = set(row.opened_pages.values_list("vendor_id", flat=True))
    assert row.status == "in_trial" and opened == {page_id(first.url), page_id(second.url)}


def test_success_never_retrieves_a_page_this_row_did_not_open(customer, fake_chargebee):
    hosted = checkout.start_checkout(context_for(), seats=2)
    fake_chargebee.reset_calls()
    with pytest.raises(NotFound):
        checkout.complete_checkout(context_for(), subscription_id=hosted.subscription_id, hosted_page_id="hp_foreign")
    assert fake_chargebee.calls() == []


def test_no_second_trial(customer, fake_chargebee):
    ended_trial = datetime(2025, 1, 1, tzinfo=UTC)
    Subscription.objects.create(organization=customer, status="cancelled", trial_end=ended_trial)
    checkout.start_checkout(context_for())
    [page] = fake_chargebee.calls("POST", "/hosted_pages/checkout_new_for_items")
    assert page.params["subscription[trial_end]"] == "0"


def test_gateway_account_is_sent_when_configured(customer, fake_chargebee, settings):
    settings.CHARGEBEE_GATEWAY_ACCOUNT_ID = "gw_stripe_1"
    checkout.start_checkout(context_for())
    [page] = fake_chargebee.calls("POST", "/hosted_pages/checkout_new_for_items")
    assert page.params["card[gateway_account_id]"] == "gw_stripe_1"


@pytest.mark.parametrize("status", ["in_trial", "active", "non_renewing", "paused", "future"])
def test_already_subscribed_is_a_409_without_vendor_calls(customer, fake_chargebee, status):
    Subscription.objects.create(organization=customer, status=status, chargebee_subscription_id="cb_1")
    with pytest.raises(BillingProblem) as caught:
        checkout.start_checkout(context_for())
    assert caught.value.status == 409 and "already has a subscription" in caught.value.message
    assert fake_chargebee.calls() == []


def test_a_cancelled_subscription_does_not_block_a_new_one(customer, fake_chargebee):
    Subscription.objects.create(organization=customer, status="cancelled", chargebee_subscription_id="cb_1")
    assert checkout.start_checkout(context_for()).url


@pytest.mark.parametrize(
    ("plan_id", "seats"), [("nope", 1), (None, 0), (None, 1001), (None, "many"), (None, True), (None, 2.5)]
)
def test_unknown_plan_or_seats_out_of_range_is_a_400(customer, fake_chargebee, plan_id, seats):
    with pytest.raises(BillingProblem) as caught:
        checkout.start_checkout(context_for(), plan_id=plan_id, seats=seats)
    assert caught.value.status == 400
    assert fake_chargebee.calls() == [] and not Subscription.objects.exists()


def test_plan_catalog_comes_from_settings(customer, fake_chargebee, settings):
    settings.ORGBILLING_PLANS = [
        {"id": "starter-USD", "name": "Starter", "max_seats": 5},
        {"id": "scale-USD", "name": "Scale", "min_seats": 10, "max_seats": 500},
    ]
    mirror_price("starter-USD", trial_period=None)
    mirror_price("scale-USD")
    with pytest.raises(BillingProblem, match="between 10 and 500 for Scale"):
        checkout.start_checkout(context_for(), plan_id="scale-USD", seats=5)
    checkout.start_checkout(context_for(), seats=5)  # the first plan is the default
    [page] = fake_chargebee.calls("POST", "/hosted_pages/checkout_new_for_items")
    assert page.params["subscription_items[item_price_id][0]"] == "starter-USD"
    assert "subscription[trial_end]" not in page.params  # no earlier trial: the item price decides (none here)


def test_success_applies_the_hosted_page_and_acknowledges_it(
    customer, fake_chargebee, django_capture_on_commit_callbacks
):
    hosted = checkout.start_checkout(context_for(), seats=3)
    page = page_id(hosted.url)
    fake_chargebee.complete_hosted_page(page)
    fake_chargebee.reset_calls()
    with SignalLog() as signals, django_capture_on_commit_callbacks(execute=True):
        checkout.complete_checkout(context_for(), subscription_id=hosted.subscription_id, hosted_page_id=page)
    assert paths(fake_chargebee) == [
        ("GET", f"/hosted_pages/{page}"),
        ("POST", f"/hosted_pages/{page}/acknowledge"),
        ("GET", f"/subscriptions/{hosted.subscription_id}/renewal_estimate"),  # its first charge, after the commit
    ]
    row = Subscription.objects.get()
    assert (row.pk, row.chargebee_subscription_id, row.status, row.seats) == (
        hosted.subscription_id,
        hosted.subscription_id,
        "in_trial",
        3,
    )
    assert row.renewal_amount is not None and row.renewal_estimate_version == row.resource_version
    assert signals.names() == ["trial_started"]


def test_success_after_the_webhook_and_on_refresh_changes_nothing_more(
    customer, fake_chargebee, django_capture_on_commit_callbacks
):
    events = []
    fake_chargebee.on_event(events.append)
    hosted = checkout.start_checkout(context_for())
    page = page_id(hosted.url)
    fake_chargebee.complete_hosted_page(page)
    with SignalLog() as signals, django_capture_on_commit_callbacks(execute=True):
        deliver_webhooks(events)
        assert Subscription.objects.get().status == "in_trial"  # the webhook came first
        for _ in range(2):  # the redirect, then a refresh of it
            checkout.complete_checkout(context_for(), subscription_id=hosted.subscription_id, hosted_page_id=page)
    assert signals.names() == ["trial_started"]  # once, whichever path saw it first
    assert len(fake_chargebee.calls("POST", f"/hosted_pages/{page}/acknowledge")) == 1
    assert Subscription.objects.get().status == "in_trial"


def test_webhook_after_success_changes_nothing_more(customer, fake_chargebee, django_capture_on_commit_callbacks):
    events = []
    fake_chargebee.on_event(events.append)
    with SignalLog() as signals, django_capture_on_commit_callbacks(execute=True):
        subscribe(fake_chargebee)
        deliver_webhooks(events)
    assert signals.names() == ["trial_started"]
    assert Subscription.objects.count() == 1


def test_unfinished_checkout_is_refused_and_nothing_changes(customer, fake_chargebee):
    hosted = checkout.start_checkout(context_for())
    with pytest.raises(BillingProblem) as caught:
        checkout.complete_checkout(
            context_for(), subscription_id=hosted.subscription_id, hosted_page_id=page_id(hosted.url)
        )
    assert caught.value.status == 409 and "not completed" in caught.value.message
    assert Subscription.objects.get().status == "future"
    assert fake_chargebee.calls("POST", "/hosted_pages/*/acknowledge") == []


def test_a_page_of_another_organization_is_not_applied(customer, fake_chargebee):
    provisioning.ensure_customer("org_2", "Other")
    theirs = checkout.start_checkout(context_for("org_2"))
    fake_chargebee.complete_hosted_page(page_id(theirs.url))
    ours = checkout.start_checkout(context_for())
    with pytest.raises(NotFound):
        checkout.complete_checkout(
            context_for(), subscription_id=ours.subscription_id, hosted_page_id=page_id(theirs.url)
        )
    with pytest.raises(NotFound):  # and their subscription id is not ours to complete
        checkout.complete_checkout(context_for(), subscription_id=theirs.subscription_id, hosted_page_id="x")
    assert set(Subscription.objects.values_list("status", flat=True)) == {"future"}
    assert fake_chargebee.calls("POST", "/hosted_pages/*/acknowledge") == []


def test_vendor_failure_leaves_a_consistent_waiting_row(customer, fake_chargebee, settings):
    settings.CHARGEBEE_MAX_RETRIES = 0
    fake_chargebee.fail_next(1, status=500, path="/hosted_pages/checkout_new_for_items")
    with pytest.raises(BillingProblem) as caught:
        checkout.start_checkout(context_for())
    assert caught.value.status == 502 and "Chargebee" in caught.value.message
    row = Subscription.objects.get()
    [update] = fake_chargebee.calls("POST", "/customers/org_1")
    assert json.loads(update.params["meta_data"])["pendingSubscriptionId"] == row.pk
    assert checkout.start_checkout(context_for()).subscription_id == row.pk  # the retry reuses it


def test_missing_payment_gateway_gets_a_clear_message():
    error = ChargebeeError("No gateway", api_error_code="no_applicable_gateway", http_status=400)
    assert "a payment gateway must be configured in Chargebee" in checkout.vendor_problem(error).message


def test_change_seats_through_a_hosted_page(customer, fake_chargebee):
    row = subscribe(fake_chargebee, seats=3)
    fake_chargebee.reset_calls()
    hosted = checkout.change_subscription(context_for(), subscription_id=row.pk, seats=7)
    [call] = fake_chargebee.calls()
    assert (call.method, call.path) == ("POST", "/hosted_pages/checkout_existing_for_items")
    assert call.params["subscription[id]"] == row.chargebee_subscription_id
    assert call.params["subscription_items[quantity][0]"] == "7"
    assert call.params["redirect_url"].endswith(f"/api/subscription/success?subscriptionId={row.pk}")
    fake_chargebee.complete_hosted_page(page_id(hosted.url))
    checkout.complete_checkout(context_for(), subscription_id=row.pk, hosted_page_id=page_id(hosted.url))
    assert Subscription.objects.get(pk=row.pk).seats == 7


def test_change_is_refused_when_nothing_changes_or_the_subscription_ended(customer, fake_chargebee):
    row = subscribe(fake_chargebee, seats=3)
    fake_chargebee.reset_calls()
    with pytest.raises(BillingProblem) as same:
        checkout.change_subscription(context_for(), subscription_id=row.pk, seats=3)
    Subscription.objects.filter(pk=row.pk).update(status="cancelled")
    with pytest.raises(BillingProblem) as ended:
        checkout.change_subscription(context_for(), subscription_id=row.pk, seats=4)
    assert (same.value.status, ended.value.status) == (400, 409)
    assert fake_chargebee.calls() == []


def test_portal_session_and_return_resync(customer, fake_chargebee):
    row = subscribe(fake_chargebee)
    fake_chargebee.reset_calls()
    url = checkout.open_portal(context_for())
    [call] = fake_chargebee.calls()
    assert (call.method, call.path) == ("POST", "/portal_sessions")
    assert call.params["customer[id]"] == "org_1"
    assert call.params["redirect_url"] == "http://testserver/billing/portal/return"
    assert "/portal/v2/access/" in url
    fake_chargebee.cancel_subscription(row.chargebee_subscription_id, end_of_term=True)  # done in the portal
    fake_chargebee.reset_calls()
    assert checkout.return_from_portal(context_for()) == 1
    assert paths(fake_chargebee) == [("GET", "/subscriptions")]
    assert checkout.return_from_portal(context_for()) is None  # a refresh: that session already came back
    assert len(fake_chargebee.calls()) == 1
    assert fake_chargebee.calls()[0].params["customer_id[is]"] == "org_1"
    row.refresh_from_db()
    assert (row.status, row.cancel_at_period_end) == ("non_renewing", True)


def test_portal_needs_a_billing_account(fake_chargebee):
    with pytest.raises(BillingProblem) as caught:
        checkout.open_portal(context_for())
    assert caught.value.status == 409
    assert checkout.return_from_portal(context_for()) is None
    assert fake_chargebee.calls() == []
