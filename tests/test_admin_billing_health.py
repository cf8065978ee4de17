"""Admin: invoices read-only and linked to Chargebee; dues, card and billing details on the organization page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orgbilling.models import BillingProfile, Invoice, Organization, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def orgs(settings):
    settings.CHARGEBEE_SITE = "acme-test"
    now = timezone.now()
    grace = Organization.objects.create(id="org_grace", display_name="In grace", chargebee_customer_id="c1")
    ended = Organization.objects.create(id="org_ended", display_name="Grace ended", chargebee_customer_id="c2")
    Organization.objects.create(id="org_fine", display_name="Fine")
    for org, days in ((grace, 2), (ended, 30)):
        Subscription.objects.create(
            organization=org, status="active", due_invoices_count=1, total_dues=4500, currency="USD",
            due_since=now - timedelta(days=days),
        )  # fmt: skip
    BillingProfile.objects.create(organization=grace, card_last4="4242", vat_number="DE123456789", company="Grace AG")
    Invoice.objects.create(id="inv_1", organization=grace, chargebee_customer_id="c1", status="payment_due", total=4500)
    return grace


def test_invoices_are_read_only_and_link_to_chargebee(admin_client, orgs):
    page = admin_client.get("/admin/orgbilling/invoice/").content.decode()
    assert 'href="https://acme-test.chargebee.com/d/invoices/inv_1"' in page
    assert admin_client.get("/admin/orgbilling/invoice/add/").status_code == 403
    assert admin_client.post("/admin/orgbilling/invoice/inv_1/delete/", {"post": "yes"}).status_code == 403
    assert Invoice.objects.exists()


def test_organization_page_shows_dues_card_and_details_and_filters_past_due(admin_client, orgs):
    detail = admin_client.get("/admin/orgbilling/organization/org_grace/change/").content.decode()
    assert "4242" in detail and "DE123456789" in detail and "Grace AG" in detail and "4500" in detail
    listing = admin_client.get("/admin/orgbilling/organization/?past_due=grace").content.decode()
    assert "org_grace" in listing and "org_ended" not in listing and "org_fine" not in listing
    listing = admin_client.get("/admin/orgbilling/organization/?past_due=ended").content.decode()
    assert "org_ended" in listing and "org_grace" not in listing
    assert "org_fine" not in admin_client.get("/admin/orgbilling/organization/?past_due=any").content.decode()
