"""The customer's card_status, stored in BillingProfile from every customer object: events, checkout, sync."""

from __future__ import annotations

import pytest

from orgbilling import checkout, provisioning, reconcile
from orgbilling.models import BillingProfile, Organization
from tests.billing_support import context_for, page_id
from tests.chargebee_payloads import (
    CUSTOMER_ID,
    START,
    pc2_customer,
    pc2_event,
    pc2_subscription,
    post_event,
    vendor_event,
)

pytestmark = pytest.mark.django_db


def customer(version: int, card_status: str | None, **fields) -> dict:
    data = dict(pc2_customer(), resource_version=START * 1000 + version, **fields)
    if card_status is None:
        del data["card_status"]
    else:
        data["card_status"] = card_status
    return data


@pytest.fixture
def org():
    return Organization.objects.create(id="org_acme", chargebee_customer_id=CUSTOMER_ID)


def card_status() -> str:
    return BillingProfile.objects.get().card_status


def changed(event_id: str, data: dict) -> dict:
    return {"id": event_id, "event_type": "customer_changed", "content": {"customer": data}}


def test_customer_changed_stores_card_status_with_the_ordering_guard(client, org):
    post_event(client, changed("ev_1", customer(2, "valid")))
    assert card_status() == "valid"
    post_event(client, changed("ev_2", customer(1, "no_card")))  # older (a late delivery): changes nothing
    assert card_status() == "valid"
    post_event(client, changed("ev_3", customer(3, "expired")))
    assert card_status() == "expired"


def test_a_subscription_event_stores_the_customer_it_carries(client, org):
    event = pc2_event("subscription_created", pc2_subscription(version=1), customer(5, "valid", company="Acme Corp"))
    assert post_event(client, event).status_code == 200
    profile = BillingProfile.objects.get()
    assert (profile.card_status, profile.customer_version, profile.company) == ("valid", START * 1000 + 5, "Acme Corp")
    # The same customer again (most events) costs nothing and changes nothing; an older one is refused.
    older = pc2_event("subscription_changed", pc2_subscription(version=2), customer(4, "expired"))
    post_event(client, older)
    assert card_status() == "valid"


def test_the_vendor_sample_card_status_is_read(client):
    event = vendor_event("subscription_renewed")
    Organization.objects.create(id="org_sample", chargebee_customer_id=event["content"]["customer"]["id"])
    post_event(client, event)
    assert card_status() == "valid"


def test_payment_source_and_card_events_store_it(client, org):
    source = {
        "id": "pm_1",
        "customer_id": CUSTOMER_ID,
        "type": "card",
        "status": "valid",
        "card": {"brand": "visa", "last4": "4242", "expiry_month": 12, "expiry_year": 2030},
        "resource_version": START * 1000 + 1,
        "object": "payment_source",
    }
    added = {"payment_source": source, "customer": customer(2, "valid", primary_payment_source_id="pm_1")}
    post_event(client, {"id": "ev_ps", "event_type": "payment_source_added", "content": added})
    assert card_status() == "valid"
    reminder = {"card": {"last4": "4242"}, "customer": customer(3, "expiring", primary_payment_source_id="pm_1")}
    post_event(client, {"id": "ev_card", "event_type": "card_expiry_reminder", "content": reminder})
    assert card_status() == "expiring"


def test_a_customer_without_card_status_keeps_the_stored_one(client, org):
    post_event(client, changed("ev_1", customer(2, "valid")))
    post_event(client, changed("ev_2", customer(3, None)))
    profile = BillingProfile.objects.get()
    assert (profile.card_status, profile.customer_version) == ("valid", START * 1000 + 3)


def test_checkout_stores_the_card_status_of_each_customer_it_gets(fake_chargebee):
    provisioning.ensure_customer("org_1", "Acme")
    context = context_for("org_1")
    hosted = checkout.start_checkout(context, seats=3)
    assert card_status() == "no_card"  # the customer update's answer
    fake_chargebee.complete_hosted_page(page_id(hosted.url))
    checkout.complete_checkout(context, subscription_id=hosted.subscription_id, hosted_page_id=page_id(hosted.url))
    assert card_status() == "valid"  # the hosted page's customer, after paying


def test_sync_fills_a_profile_the_webhooks_left_behind(fake_chargebee):
    fake_chargebee.create_customer(id="org_1", card_status="valid")
    fake_chargebee.create_subscription("org_1", "team-plan-USD-monthly", 3)
    seen = fake_chargebee.get_customer("org_1")["resource_version"]
    # The organization already knows this customer version, but its profile never got card_status (an upgrade).
    Organization.objects.create(id="org_1", chargebee_customer_id="org_1", chargebee_customer_version=seen)
    reconcile.sync_subscriptions()
    assert card_status() == "valid"
