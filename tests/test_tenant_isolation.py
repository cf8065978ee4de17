"""Tenant isolation matrix: organization B's users aim every page and API endpoint at organization A.

A ("Rival Corp") has a paid subscription and a finished hosted page. B's
admin, by Bearer token and by session cookie, sends A's reference, A's
subscription id and A's hosted page id everywhere they fit. Whatever each
endpoint answers, nothing of A is read (no A string in any body or
Location), nothing of A changes, and Chargebee is not called at all.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from orgbilling import checkout, provisioning
from orgbilling.models import Subscription
from tests.billing_support import context_for, page_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def victim(fake_chargebee):
    """org_2 with a paid subscription and a finished checkout page; the call log starts empty."""
    provisioning.ensure_customer("org_2", "Rival Corp")
    hosted = checkout.start_checkout(context_for("org_2"), seats=2)
    fake_chargebee.complete_hosted_page(page_id(hosted.url))
    checkout.complete_checkout(
        context_for("org_2"), subscription_id=hosted.subscription_id, hosted_page_id=page_id(hosted.url)
    )
    fake_chargebee.reset_calls()
    return Subscription.objects.get(organization_id="org_2"), page_id(hosted.url)


def attempts(theirs: Subscription, their_page: str, own_row: Subscription) -> dict[str, tuple[str, str, dict]]:
    """name -> (method, path, data): every endpoint with A's ids wherever the endpoint takes an id."""
    return {
        "billing page": ("GET", "/billing", {}),
        "session": ("GET", "/api/session", {}),
        "subscription list": ("GET", "/api/subscription", {}),
        "create for A": ("JSON", "/api/subscription/create", {"referenceId": "org_2", "seats": 1}),
        "subscribe form": ("POST", "/billing/subscribe", {"referenceId": "org_2", "seats": "1"}),
        "change A's subscription": ("POST", "/billing/change", {"subscription": theirs.pk, "seats": "5"}),
        "portal": ("POST", "/billing/portal", {"referenceId": "org_2"}),
        "portal return": ("GET", "/billing/portal/return", {}),
        "success with A's ids": ("GET", "/api/subscription/success", {"subscriptionId": theirs.pk, "id": their_page}),
        "success, own row, A's page": (
            "GET",
            "/api/subscription/success",
            {"subscriptionId": own_row.pk, "id": their_page},
        ),
    }


def send(client: Client, method: str, path: str, data: dict, headers: dict):
    if method == "GET":
        return client.get(path, data, **headers)
    if method == "JSON":
        return client.post(path, json.dumps(data), content_type="application/json", **headers)
    return client.post(path, data, **headers)


@pytest.mark.parametrize("auth", ["bearer", "cookie"])
def test_organization_b_cannot_read_or_change_organization_a(scalekit, fake_chargebee, victim, auth):
    theirs, their_page = victim
    before = Subscription.objects.get(pk=theirs.pk)
    # B is an organization with a waiting checkout row but no billing account yet: any Chargebee call is A's.
    own_row = Subscription.objects.create(organization=context_for("org_1").organization, plan_id="x")
    if auth == "bearer":
        client, headers = Client(), scalekit.bearer()
    else:
        client, headers = scalekit.sign_in(Client()), {}

    answers = {}
    for name, (method, path, data) in attempts(theirs, their_page, own_row).items():
        if name == "subscribe form":
            continue  # B may subscribe itself; its form takes no reference, checked below
        answers[name] = send(client, method, path, data, headers)

    for name, response in answers.items():
        shown = response.content.decode() + response.get("Location", "")
        for secret in (theirs.pk, their_page, "Rival", "org_2", "org_2".upper()):
            assert secret not in shown, (name, response.status_code, shown[:300])
    refused = {name: answers[name].status_code for name in ("create for A", "change A's subscription")}
    assert refused == {"create for A": 403, "change A's subscription": 404}
    assert fake_chargebee.calls() == []
    after = Subscription.objects.get(pk=theirs.pk)
    assert (after.status, after.seats, after.updated_at) == (before.status, before.seats, before.updated_at)
    assert Subscription.objects.filter(organization_id="org_2").count() == 1


def test_subscribe_form_ignores_a_foreign_reference(scalekit, fake_chargebee, victim):
    client = scalekit.sign_in(Client())
    response = client.post("/billing/subscribe", {"referenceId": "org_2", "seats": "1"})
    assert response.status_code == 303
    # Every call the checkout made was about B's own customer.
    for call in fake_chargebee.calls():
        assert "org_2" not in json.dumps(call.params) and "org_2" not in call.path
    assert Subscription.objects.filter(organization_id="org_2").count() == 1
