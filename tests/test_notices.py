"""Notices for the host app: in GET /api/subscription and from the template tag, at no query of their own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import timezone

from orgbilling.models import BillingProfile, Organization, Subscription
from tests.billing_support import context_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def troubled(settings) -> Subscription:
    """Past due 3 days (grace 7), card expiring this month, every seat in use, cancelling at period end."""
    settings.ORGBILLING_PLANS = [{"id": "team", "name": "Team", "max_seats": 5}]
    organization = Organization.objects.create(id="org_1", display_name="Acme Corp", chargebee_customer_id="cust_1")
    now = timezone.now()
    BillingProfile.objects.create(
        organization=organization, payment_source_id="pm_1", card_last4="4242",
        card_expiry_month=now.month, card_expiry_year=now.year, payment_status="valid",
    )  # fmt: skip
    return Subscription.objects.create(
        organization=organization, status="active", plan_id="team", seats=5, chargebee_subscription_id="cb_1",
        currency="USD", due_invoices_count=1, total_dues=4500, due_since=now - timedelta(days=3),
        cancel_at_period_end=True, current_period_end=now + timedelta(days=20),
    )  # fmt: skip


KINDS = ["past_due", "grace_ending", "card_expiring", "seat_limit_reached", "cancellation_scheduled"]


def test_api_lists_every_notice_with_a_link_in_the_same_queries(
    client, scalekit, troubled, django_assert_max_num_queries
):
    headers = scalekit.bearer()
    client.get("/api/session", **headers)
    with django_assert_max_num_queries(2):
        body = client.get("/api/subscription", **headers).json()
    assert [notice["kind"] for notice in body["notices"]] == KINDS
    past_due = body["notices"][0]
    assert past_due["severity"] == "error" and past_due["url"] == "/billing#past-due"
    assert past_due["message"].startswith("A payment of $45.00 failed on ")
    assert past_due["message"].endswith("pay now to keep Acme Corp's subscription.")
    assert body["notices"][2]["url"] == "/billing#payment-method"


def test_a_healthy_subscription_has_no_notices(client, scalekit):
    Subscription.objects.create(organization=Organization.objects.create(id="org_1"), status="active", seats=1)
    assert client.get("/api/subscription", **scalekit.bearer()).json()["notices"] == []


def test_template_tag_renders_the_same_in_one_query(troubled, django_assert_num_queries):
    request = RequestFactory().get("/reports")
    request.billing = context_for("org_1")
    with django_assert_num_queries(1):
        html = Template("{% load orgbilling_notices %}{% billing_notices request %}").render(
            Context({"request": request})
        )
    assert html.count("<li") == 5 and 'href="/billing#past-due"' in html and 'data-kind="card_expiring"' in html
    assert Template("{% load orgbilling_notices %}{% billing_notices None %}").render(Context()).strip() == ""
