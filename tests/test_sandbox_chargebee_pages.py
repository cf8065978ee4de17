"""The fake Chargebee mounted in Django: its API behind Basic Auth, and the customer's checkout and portal pages."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox import runtime
from tests.sandbox_support import sandbox  # noqa: F401  (fixture)

SITE = "http://testserver/sandbox/chargebee"


@pytest.fixture
def fake(sandbox):  # noqa: F811
    return runtime.chargebee()


def open_checkout(fake, sandbox, quantity=3):  # noqa: F811
    items = [fake.item(sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 0, quantity)]
    order = {
        "items": items,
        "subscription_id": "sub_1",
        "customer": {"id": "org_1"},
        "trial_end": None,
        "redirect_url": "http://testserver/api/subscription/success?subscriptionId=sub_1",
        "cancel_url": "http://testserver/billing",
    }
    return fake.open_checkout("checkout_new", SITE, order, None)


def test_api_is_served_under_the_configured_base_url(client, fake, sandbox):  # noqa: F811
    fake.create_customer("org_1", company="Acme")
    key = base64.b64encode(f"{sandbox.CHARGEBEE_API_KEY}:".encode()).decode()

    answer = client.get("/sandbox/chargebee/api/v2/customers/org_1", HTTP_AUTHORIZATION=f"Basic {key}")

    assert answer.status_code == 200
    assert answer.json()["customer"]["company"] == "Acme"
    assert sandbox.CHARGEBEE_API_BASE_URL == f"{SITE}/api/v2"
    assert client.get("/sandbox/chargebee/api/v2/customers/org_1").status_code == 401


def test_checkout_declines_the_test_card_then_pays_and_returns_to_the_app(client, fake, sandbox):  # noqa: F811
    page = open_checkout(fake, sandbox)
    path = urlsplit(page["url"]).path
    assert client.get(path).status_code == 200

    declined = client.post(path, {"card_number": "4000 0000 0000 0002"})
    assert declined.status_code == 400
    assert b"Your card was declined" in declined.content
    assert client.post(path, {"card_number": "1234 5678"}).status_code == 400

    paid = client.post(path, {"card_number": "4111 1111 1111 1111"})

    assert paid.status_code == 302
    location = urlsplit(paid["Location"])
    assert location.path == "/api/subscription/success"
    assert parse_qs(location.query) == {"subscriptionId": ["sub_1"], "id": [page["id"]], "state": ["succeeded"]}
    assert fake.get_subscription("sub_1")["status"] == "active"
    assert client.get(path).status_code == 410  # a hosted page is used once


def test_unknown_checkout_page(client, fake):
    assert client.get("/sandbox/chargebee/pages/v3/nope/").status_code == 404


def test_portal_changes_seats_cancels_and_returns(client, fake, sandbox):  # noqa: F811
    fake.create_subscription("org_1", sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 3, id="sub_1")
    fake.create_subscription("org_2", sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 1, id="sub_other")
    session = fake.create_portal_session("org_1", SITE, "http://testserver/billing/portal/return")
    path = urlsplit(session["access_url"]).path

    shown = client.get(path)
    assert shown.status_code == 200
    assert b"3 seats" in shown.content and b"sub_other" not in shown.content

    client.post(path, {"action": "seats", "subscription_id": "sub_1", "quantity": "5"})
    assert fake.get_subscription("sub_1")["subscription_items"][0]["quantity"] == 5
    assert client.post(path, {"action": "cancel_now", "subscription_id": "sub_other"}).status_code == 400
    client.post(path, {"action": "cancel_end", "subscription_id": "sub_1"})
    assert fake.get_subscription("sub_1")["status"] == "non_renewing"
    assert b"Cancels on" in client.get(path).content

    back = client.post(path, {"action": "return"})

    assert (back.status_code, back["Location"]) == (302, "http://testserver/billing/portal/return")
    assert client.get(path).status_code == 410  # signed out of the portal
    events = [event["event_type"] for event in fake.store.find("event", [("source", "is", "portal")])]
    assert events == ["subscription_cancellation_scheduled", "subscription_changed"]
