"""The JSON API: session, subscription list, checkout; CSRF rules; and cross-organization isolation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.test import Client

from orgbilling import provisioning
from orgbilling.models import Organization, Subscription

pytestmark = pytest.mark.django_db


def create(client, body: dict | bytes | None = None, **headers):
    payload = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    return client.post("/api/subscription/create", payload, content_type="application/json", **headers)


@pytest.fixture
def customer(fake_chargebee):
    organization = provisioning.ensure_customer("org_1", "Acme")
    fake_chargebee.reset_calls()
    return organization


def test_subscription_list_reads_the_local_table_in_two_queries(client, scalekit, django_assert_max_num_queries):
    counted_at = datetime(2030, 1, 1, tzinfo=UTC)
    organization = Organization.objects.create(
        id="org_1", seats_used=4, seats_pending=1, seat_limit=5, seats_counted_at=counted_at
    )
    older = Subscription.objects.create(organization=organization, status="cancelled", chargebee_subscription_id="a")
    newer = Subscription.objects.create(
        organization=organization,
        status="in_trial",
        plan_id="team-plan-USD-monthly",
        seats=5,
        chargebee_subscription_id="b",
        trial_end=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        current_period_end=datetime(2030, 2, 2, tzinfo=UTC),
    )
    waiting = Subscription.objects.create(organization=organization, plan_id="team-plan-USD-monthly")  # checkout row
    Subscription.objects.create(organization=Organization.objects.create(id="org_2"), status="active")
    headers = scalekit.bearer()
    client.get("/api/session", **headers)  # warm the key cache: the count is about the database
    with django_assert_max_num_queries(2):
        response = client.get("/api/subscription", **headers)
    assert response.status_code == 200
    assert response.json() == {
        "subscriptions": [
            {
                "id": waiting.pk,
                "status": "future",
                "entitled": False,
                "planId": "team-plan-USD-monthly",
                "seats": 1,
                "trialEnd": None,
                "currentPeriodEnd": None,
                "cancelAtPeriodEnd": False,
            },
            {
                "id": newer.pk,
                "status": "in_trial",
                "entitled": True,
                "planId": "team-plan-USD-monthly",
                "seats": 5,
                "trialEnd": "2030-01-02T03:04:05Z",
                "currentPeriodEnd": "2030-02-02T00:00:00Z",
                "cancelAtPeriodEnd": False,
            },
            {
                "id": older.pk,
                "status": "cancelled",
                "entitled": False,
                "planId": "",
                "seats": 1,
                "trialEnd": None,
                "currentPeriodEnd": None,
                "cancelAtPeriodEnd": False,
            },
        ],
        "seatsUsed": 4,
        "seatsPending": 1,
        "seatLimit": 5,
        "seatsCountedAt": "2030-01-01T00:00:00Z",
        "notices": [],
    }


def test_unknown_organization_gets_an_empty_list(client, scalekit):
    body = client.get("/api/subscription", **scalekit.bearer(oid="org_never_seen")).json()
    assert body == {
        "subscriptions": [],
        "seatsUsed": None,
        "seatsPending": None,
        "seatLimit": None,
        "seatsCountedAt": None,
        "notices": [],
    }


def test_bearer_checkout_needs_no_csrf_token_and_costs_two_calls(scalekit, customer, fake_chargebee):
    api = Client(enforce_csrf_checks=True)
    response = create(api, {"seats": 3}, **scalekit.bearer())
    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "hosted" and "/pages/v3/" in body["url"]
    assert Subscription.objects.get().pk == body["subscriptionId"]
    assert len(fake_chargebee.calls()) == 2


def test_cookie_checkout_needs_the_csrf_token(scalekit, customer, fake_chargebee):
    browser = scalekit.sign_in(Client(enforce_csrf_checks=True))
    browser.get("/api/session")  # sets the CSRF cookie for the front end
    refused = create(browser, {"seats": 3})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    assert fake_chargebee.calls() == []
    accepted = create(browser, {"seats": 3}, HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    assert accepted.status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        ({"planId": "unknown"}, 400),
        ({"seats": 0}, 400),
        ({"seats": "3"}, 200),
        ({"referenceId": "org_1", "planId": "team-plan-USD-monthly", "seats": 1000}, 200),
    ],
)
def test_checkout_body_is_validated(client, scalekit, customer, fake_chargebee, body, status):
    response = create(client, body, **scalekit.bearer())
    assert response.status_code == status
    if status == 400:
        assert response.json()["error"] and fake_chargebee.calls() == []


def test_checkout_refusals(client, scalekit, customer, fake_chargebee):
    assert create(client).status_code == 401
    member = create(client, {}, **scalekit.bearer(roles=["member"]))
    assert member.status_code == 403 and "billing managers" in member.json()["error"]
    Subscription.objects.create(organization=customer, status="active", chargebee_subscription_id="cb_1")
    taken = create(client, {}, **scalekit.bearer())
    assert taken.status_code == 409 and "already has a subscription" in taken.json()["error"]
    assert fake_chargebee.calls() == []


def test_checkout_is_throttled_per_organization(client, scalekit, customer, fake_chargebee, settings):
    settings.ORGBILLING_THROTTLE_RATE = "1/hour"
    assert create(client, {}, **scalekit.bearer()).status_code == 200
    response = create(client, {}, **scalekit.bearer())
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 3600
    assert "Too many" in response.json()["error"]
    assert len(fake_chargebee.calls("POST", "/hosted_pages/*")) == 1


def test_vendor_errors_become_json(client, scalekit, customer, fake_chargebee, settings):
    settings.CHARGEBEE_MAX_RETRIES = 0
    fake_chargebee.fail_next(1, status=500, path="/hosted_pages/checkout_new_for_items")
    response = create(client, {}, **scalekit.bearer())
    assert response.status_code == 502 and "Chargebee" in response.json()["error"]


def test_session_sets_the_csrf_cookie_for_front_ends(client, scalekit):
    response = client.get("/api/session", **scalekit.bearer())
    assert response.cookies["csrftoken"].value
    assert client.get("/api/session").status_code == 401


def test_subscription_list_costs_one_query_once_the_organization_is_known(client, scalekit, django_assert_num_queries):
    organization = Organization.objects.create(id="org_1")
    Subscription.objects.create(organization=organization, status="active", chargebee_subscription_id="a")
    headers = scalekit.bearer()
    client.get("/api/subscription", **headers)  # first sight: the middleware makes sure the row exists
    with django_assert_num_queries(1):
        response = client.get("/api/subscription", **headers)
    assert [s["status"] for s in response.json()["subscriptions"]] == ["active"]
