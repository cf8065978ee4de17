"""Vendor faults: Chargebee timing out or answering 5xx/429 at every step that calls it, Scalekit's JWKS down.

For each fault: the user (or the vendor's delivery) gets a clear error, the
gateway retries a bounded number of times, nothing is half-written, and once
the vendor is back a retry or a replay finishes the job.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest
from django.core.management import call_command
from django.test import Client

from orgbilling import checkout, provisioning
from orgbilling.errors import BillingProblem
from orgbilling.models import Organization, Subscription, WebhookDelivery
from tests.billing_support import context_for, page_id
from tests.conftest import CHARGEBEE_PASSWORD, CHARGEBEE_USER, sample

pytestmark = pytest.mark.django_db

CREATED = sample("scalekit/webhooks/organization.created.json")
DELETED = sample("scalekit/webhooks/organization.deleted.json")
ORG_ID = CREATED["data"]["id"]
TRIES = 3  # CHARGEBEE_MAX_RETRIES (2) + the first try

FAULTS = {
    "timeout": {"timeout_seconds": 2},
    "5xx": {"status": 503},
    "429": {"status": 429},
}


@pytest.fixture(params=sorted(FAULTS))
def fault(request, settings):
    if request.param == "timeout":
        # The fake holds a timeout fault's answer 2 s. The calls after the faults get the same 0.5 s: ten times what
        # they need on a quiet machine (at 0.05 s a loaded CI machine timed one out, and its retry made a second).
        settings.CHARGEBEE_READ_TIMEOUT = 0.5
    return FAULTS[request.param]


def test_provisioning_fault_fails_the_delivery_and_the_retry_heals_it(post_scalekit, fake_chargebee, fault):
    fake_chargebee.fail_next(TRIES, path="/customers", **fault)
    response = post_scalekit(CREATED)
    assert response.status_code == 500 and response.json()["status"] == "failed"
    assert len(fake_chargebee.calls("POST", "/customers")) == TRIES  # bounded
    assert "Chargebee" in WebhookDelivery.objects.get().last_error
    assert Organization.objects.get().chargebee_customer_id is None  # the intent is kept, no customer recorded

    assert post_scalekit(CREATED).status_code == 200  # Scalekit's retry
    org = Organization.objects.get(pk=ORG_ID)
    assert org.chargebee_customer_id == ORG_ID
    assert len([c for c in fake_chargebee.calls("POST", "/customers") if not c.faulted]) == 1


def test_deletion_fault_is_finished_by_replay(post_scalekit, fake_chargebee, fault):
    post_scalekit(CREATED)
    subs = [fake_chargebee.create_subscription(customer_id=ORG_ID, item_price_id="plan", quantity=1) for _ in range(2)]
    fake_chargebee.fail_after(1, TRIES, path="/subscriptions/*", **fault)
    assert post_scalekit(DELETED).status_code == 500
    assert Organization.objects.get(pk=ORG_ID).is_deleted  # recorded before the first call
    call_command("orgbilling_replay", "--failed")
    assert WebhookDelivery.objects.get(event_id=DELETED["id"]).status == "processed"
    assert all(fake_chargebee.get_subscription(s["id"])["status"] == "cancelled" for s in subs)
    assert Organization.objects.get(pk=ORG_ID).is_deleted


def test_checkout_fault_is_a_clear_error_and_the_next_click_reuses_the_row(fake_chargebee, fault):
    provisioning.ensure_customer("org_1", "Acme")
    fake_chargebee.fail_next(TRIES, path="/hosted_pages/checkout_new_for_items", **fault)
    with pytest.raises(BillingProblem) as caught:
        checkout.start_checkout(context_for(), seats=2)
    assert caught.value.status in (502, 503, 504) and "Chargebee" in str(caught.value)
    assert len(fake_chargebee.calls("POST", "/hosted_pages/checkout_new_for_items")) == TRIES
    [row] = Subscription.objects.all()
    assert (row.status, row.chargebee_subscription_id, row.opened_pages.count()) == ("future", None, 0)

    hosted = checkout.start_checkout(context_for(), seats=2)
    assert hosted.subscription_id == row.pk and Subscription.objects.count() == 1
    fake_chargebee.complete_hosted_page(page_id(hosted.url))
    checkout.complete_checkout(context_for(), subscription_id=row.pk, hosted_page_id=page_id(hosted.url))
    assert Subscription.objects.get().status in ("active", "in_trial")


def test_chargebee_webhook_is_recorded_even_when_strict_mode_cannot_reach_chargebee(fake_chargebee, settings, fault):
    settings.ORGBILLING_CHARGEBEE_STRICT_WEBHOOKS = True
    Organization.objects.create(id="org_cb", chargebee_customer_id="16CHTnSAxXWqMAg8")
    event = copy.deepcopy(sample("chargebee/events/subscription_created.json"))
    auth = "Basic " + base64.b64encode(f"{CHARGEBEE_USER}:{CHARGEBEE_PASSWORD}".encode()).decode()
    post = lambda: Client().post(  # noqa: E731
        "/api/webhooks/chargebee", json.dumps(event), content_type="application/json", HTTP_AUTHORIZATION=auth
    )
    fake_chargebee.fail_next(TRIES, path="/events/*", **fault)
    assert post().status_code == 500
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and not Subscription.objects.exists()
    fake_chargebee.store.put("event", event)  # Chargebee's own copy, read once it answers again
    call_command("orgbilling_replay", "--id", event["id"])
    delivery.refresh_from_db()
    assert delivery.status == "processed" and Subscription.objects.count() == 1


# -- Scalekit's JWKS ---------------------------------------------------------------------------


def test_jwks_unreachable_at_start_is_a_503_not_a_500_and_recovers(client, scalekit):
    scalekit.jwks_down = True
    response = client.get("/api/session", **scalekit.bearer())
    assert response.status_code == 503 and response["Retry-After"]
    scalekit.jwks_down = False
    assert client.get("/api/session", **scalekit.bearer()).status_code == 200


def test_jwks_unreachable_during_rotation_keeps_old_keys_working(client, scalekit, settings, clock):
    settings.ORGBILLING_JWKS_REFETCH_COOLDOWN = 0.2
    assert client.get("/api/session", **scalekit.bearer()).status_code == 200
    old_key = scalekit.key
    scalekit.rotate()
    scalekit.jwks_down = True
    clock.advance(0.3)
    # A token signed with the new key cannot be checked yet: 503 (try again), not a 500 nor a 401.
    assert client.get("/api/session", **scalekit.bearer()).status_code == 503
    # Tokens with the cached key keep working while the JWKS is down.
    old_token = {"HTTP_AUTHORIZATION": f"Bearer {scalekit.token(key=old_key)}"}
    assert client.get("/api/session", **old_token).status_code == 200
    scalekit.jwks_down = False
    clock.advance(0.3)
    assert client.get("/api/session", **scalekit.bearer()).status_code == 200


def test_billing_page_with_jwks_down_is_a_503_not_a_sign_in_loop(client, scalekit):
    scalekit.jwks_down = True
    scalekit.sign_in(client)
    response = client.get("/billing", HTTP_ACCEPT="text/html")
    assert response.status_code == 503 and response["Retry-After"]
    assert "Sign-in is temporarily unavailable" in response.content.decode()
