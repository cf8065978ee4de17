"""The card on file: payment-source events, the legacy card events, the sync pass, warnings, and replacing it."""

from __future__ import annotations

import io
import math
from datetime import date

import pytest
from django.core.management import call_command
from django.test import Client

from orgbilling import provisioning
from orgbilling.models import BillingProfile, Organization, WebhookDelivery
from orgbilling.payment_sources import card_warning
from sandbox import runtime
from tests.chargebee_payloads import CUSTOMER_ID, START, _event_ids, pc2_customer, post_event
from tests.sandbox_support import sandbox  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def source(source_id: str = "pm_1", *, version: int = 1, last4: str = "1111", status: str = "valid", **card) -> dict:
    """A payment_source as Chargebee's API reference describes it (card fields nested under ``card``)."""
    return {
        "id": source_id,
        "customer_id": CUSTOMER_ID,
        "type": "card",
        "status": status,
        "gateway": "chargebee",
        "resource_version": START * 1000 + version,
        "updated_at": START + version,
        "deleted": False,
        "object": "payment_source",
        "card": {"brand": "visa", "last4": last4, "expiry_month": 12, "expiry_year": 2030, "object": "card", **card},
    }


def event(event_type: str, customer: dict | None = None, **content) -> dict:
    return {
        "id": f"ev_{event_type}_{next(_event_ids)}",  # unique: id() of a freed dict comes back, a redelivery
        "event_type": event_type,
        "occurred_at": START,
        "object": "event",
        "api_version": "v2",
        "content": {"customer": customer or pc2_customer(), **content},
    }


@pytest.fixture
def acme() -> Organization:
    return Organization.objects.create(id="org_1", display_name="Acme Corp", chargebee_customer_id=CUSTOMER_ID)


def profile() -> BillingProfile:
    return BillingProfile.objects.get(organization_id="org_1")


def last_outcome() -> str:
    return WebhookDelivery.objects.order_by("-pk").first().status


def test_added_updated_stale_and_deleted(client, acme):
    post_event(client, event("payment_source_added", payment_source=source(version=2)))
    card = profile()
    assert (card.payment_source_id, card.card_brand, card.card_last4, card.card_expiry_month) == (
        "pm_1",
        "visa",
        "1111",
        12,
    )
    post_event(client, event("payment_source_updated", payment_source=source(version=1, last4="0000")))
    assert last_outcome() == "ignored" and profile().card_last4 == "1111"
    post_event(client, event("payment_source_expiring", payment_source=source(version=3, status="expiring")))
    assert profile().payment_status == "expiring"
    other = pc2_customer()
    other["primary_payment_source_id"] = "pm_1"
    post_event(client, event("payment_source_added", other, payment_source=source("pm_2", version=4)))
    assert last_outcome() == "ignored" and profile().payment_source_id == "pm_1"  # not the primary one
    post_event(client, event("payment_source_deleted", payment_source=source(version=5)))
    assert (profile().payment_source_id, profile().card_last4) == ("", "")


def test_legacy_card_events_move_the_status_and_customer_changed_follows_the_primary(client, acme):
    post_event(client, event("payment_source_added", payment_source=source()))
    legacy = {"customer_id": CUSTOMER_ID, "status": "valid", "last4": "1111", "card_type": "visa", "object": "card"}
    post_event(client, event("card_expiry_reminder", card=legacy))
    assert profile().payment_status == "expiring"
    post_event(client, event("card_expired", card=legacy))
    assert profile().payment_status == "expired"
    post_event(client, event("card_expired", card=dict(legacy, last4="9999")))
    assert last_outcome() == "ignored"

    switched = dict(pc2_customer(), primary_payment_source_id="pm_2")
    post_event(client, event("customer_changed", switched))
    assert (profile().payment_source_id, profile().card_last4) == ("pm_2", "")
    post_event(client, event("payment_source_added", switched, payment_source=source("pm_2", last4="4242")))
    assert profile().card_last4 == "4242"
    post_event(client, event("customer_changed", dict(pc2_customer(), card_status="no_card")))
    assert profile().payment_source_id == ""


def test_a_malformed_payment_source_is_refused(client, acme):
    assert post_event(client, event("payment_source_added", payment_source=source(expiry_month=13))).status_code == 400
    assert post_event(client, event("card_expired")).status_code == 400  # no card
    assert not BillingProfile.objects.exists()


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2030, 11, 30), None),
        (date(2030, 12, 1), "card_expiring"),  # 30 days before 31 December
        (date(2030, 12, 31), "card_expiring"),
        (date(2031, 1, 1), "card_expired"),
    ],
)
def test_expiry_warning_window(today, expected):
    card = BillingProfile(card_expiry_month=12, card_expiry_year=2030, payment_status="valid")
    warning = card_warning(card, today)
    assert (warning.kind if warning else None) == expected


def test_sync_pass_lists_every_customers_sources_100_a_page(fake_chargebee, acme):
    other = Organization.objects.create(id="org_2", chargebee_customer_id="cust_2")
    for customer in (CUSTOMER_ID, other.chargebee_customer_id):
        fake_chargebee.create_customer(customer)
    for number in range(120):
        fake_chargebee.add_card(CUSTOMER_ID if number % 2 else "cust_2", f"4111111111{number:06}")
    fake_chargebee.reset_calls()
    out = io.StringIO()
    call_command("orgbilling_sync", "--payment-sources", stdout=out, stderr=io.StringIO())
    calls = fake_chargebee.calls()
    assert len(calls) == math.ceil(2 / 100) and calls[0].path == "/payment_sources"  # only the live ones: 2
    assert calls[0].params["limit"] == "100" and "customer_id[is]" not in calls[0].params
    assert (
        BillingProfile.objects.get(organization=acme).card_last4
        == fake_chargebee.primary_source(CUSTOMER_ID)["card"]["last4"]
    )
    assert "payment sources: created 2" in out.getvalue()


# -- the page --------------------------------------------------------------------------------------


def test_page_shows_the_card_the_warning_and_update_for_managers_only(scalekit, acme, settings):
    BillingProfile.objects.create(
        organization=acme, payment_source_id="pm_1", card_brand="visa", card_last4="4242",
        card_expiry_month=1, card_expiry_year=2000, payment_status="valid",
    )  # fmt: skip
    html = scalekit.sign_in(Client()).get("/billing").content.decode()
    assert "Visa ending in 4242, expires 01/2000" in html and "This card expired" in html
    assert 'action="/billing/payment-method"' in html
    member = scalekit.sign_in(Client(), roles=["member"])
    html = member.get("/billing").content.decode()
    assert "ending in 4242" in html and 'action="/billing/payment-method"' not in html
    assert member.post("/billing/payment-method").status_code == 403


def test_update_payment_method_round_trip(scalekit, fake_chargebee):
    provisioning.ensure_customer("org_1", "Acme Corp")
    fake_chargebee.add_card("org_1", "4111111111111111")
    browser = scalekit.sign_in(Client())
    fake_chargebee.reset_calls()
    response = browser.post("/billing/payment-method")
    assert response.status_code == 303 and "/manage_payment_sources/" in response["Location"]
    [call] = fake_chargebee.calls("POST", "/hosted_pages/manage_payment_sources")
    assert call.params["redirect_url"].endswith("/billing/payment-method/return")
    fake_chargebee.add_card("org_1", "5555555555554444", 3, 2031)  # what the customer did there
    page_id = response["Location"].rstrip("/").rsplit("/", 1)[1]
    assert browser.get("/billing/payment-method/return?id=not-opened-here").status_code == 302
    assert fake_chargebee.calls("GET", "/payment_sources") == []  # a page this site did not open: no call
    for _ in range(2):  # the first return re-reads the card; a refresh costs nothing
        back = browser.get(f"/billing/payment-method/return?id={page_id}&state=succeeded")
        assert back.status_code == 302 and back["Location"] == "/billing#payment-method"
    assert len(fake_chargebee.calls("GET", "/payment_sources")) == 1
    assert "Mastercard ending in 4444, expires 03/2031" in browser.get("/billing").content.decode()


def test_the_sandbox_page_replaces_the_card(client, sandbox):  # noqa: F811
    fake = runtime.chargebee()
    fake.create_customer("org_1")
    fake.add_card("org_1", "4111111111111111")
    page = fake.open_manage_payment_sources("org_1", "http://testserver/sandbox/chargebee", "http://testserver/back")
    path = page["url"].removeprefix("http://testserver")
    assert "Visa ending in 1111" in client.get(path).content.decode()
    assert client.post(path, {"card_number": "1234", "expiry": "12/30"}).status_code == 400
    saved = client.post(path, {"card_number": "5555 5555 5555 4444", "expiry": "07/32"})
    assert saved.status_code == 302 and saved["Location"].startswith("http://testserver/back?id=")
    card = fake.primary_source("org_1")["card"]
    assert (card["brand"], card["last4"], card["expiry_month"], card["expiry_year"]) == ("mastercard", "4444", 7, 2032)
