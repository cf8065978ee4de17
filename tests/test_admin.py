"""Admin pages for support staff, and the replay action's permission and confirmation."""

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User

from orgbilling.models import Organization, Subscription, WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    org = Organization.objects.create(id="org_1", display_name="Acme", chargebee_customer_id="org_1")
    Subscription.objects.create(organization=org, status="active", plan_id="team", seats=3)
    return org


@pytest.fixture
def failed_delivery():
    body = json.dumps({"id": "evt_9", "type": "user.signup", "data": {"id": "usr_1"}})
    return WebhookDelivery.objects.create(
        vendor="scalekit", event_id="evt_9", event_type="user.signup", body=body, status="failed", last_error="boom"
    )


def staff(with_replay: bool) -> User:
    user = User.objects.create_user("support", password="pw", is_staff=True)
    codenames = ["view_organization", "view_subscription", "view_webhookdelivery"]
    if with_replay:
        codenames.append("replay_webhookdelivery")
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_pages_render_for_a_superuser(admin_client, org, failed_delivery, settings):
    settings.CHARGEBEE_SITE = "acme-test"
    page = admin_client.get("/admin/orgbilling/organization/")
    assert page.status_code == 200
    assert b"https://acme-test.chargebee.com/d/customers/org_1" in page.content
    detail = admin_client.get("/admin/orgbilling/organization/org_1/change/")
    assert detail.status_code == 200 and b"team" in detail.content  # subscriptions inline
    assert admin_client.get("/admin/orgbilling/organization/?q=Acme").status_code == 200
    assert admin_client.get("/admin/orgbilling/subscription/?status=active").status_code == 200
    assert admin_client.get("/admin/orgbilling/webhookdelivery/?vendor=scalekit&status=failed").status_code == 200
    body_page = admin_client.get(f"/admin/orgbilling/webhookdelivery/{failed_delivery.pk}/change/")
    assert body_page.status_code == 200
    assert b"&quot;type&quot;: &quot;user.signup&quot;" in body_page.content  # pretty-printed body


def test_deliveries_are_read_only(admin_client, failed_delivery):
    assert admin_client.get("/admin/orgbilling/webhookdelivery/add/").status_code == 403


def replay_post(client, delivery, confirmed: bool):
    data = {"action": "replay_deliveries", "_selected_action": [delivery.pk]}
    if confirmed:
        data["confirmed"] = "yes"
    return client.post("/admin/orgbilling/webhookdelivery/", data)


def test_replay_asks_for_confirmation_then_runs_the_delivery_code(client, failed_delivery):
    client.force_login(staff(with_replay=True))
    page = replay_post(client, failed_delivery, confirmed=False)
    assert page.status_code == 200 and b"Yes, I" in page.content
    failed_delivery.refresh_from_db()
    assert failed_delivery.status == "failed"  # nothing ran yet
    replay_post(client, failed_delivery, confirmed=True)
    failed_delivery.refresh_from_db()
    assert (failed_delivery.status, failed_delivery.attempts) == ("ignored", 1)


def test_replay_needs_its_own_permission(client, failed_delivery):
    client.force_login(staff(with_replay=False))
    listing = client.get("/admin/orgbilling/webhookdelivery/")
    assert listing.status_code == 200 and b"replay_deliveries" not in listing.content
    replay_post(client, failed_delivery, confirmed=True)
    failed_delivery.refresh_from_db()
    assert failed_delivery.status == "failed"


def test_the_delivery_list_counts_pending_and_failed_and_shows_the_next_attempt(admin_client, failed_delivery):
    WebhookDelivery.objects.create(vendor="chargebee", event_id="ev_1", event_type="x", body="{}")
    failed_delivery.next_attempt_at = datetime(2031, 5, 6, 7, 8, tzinfo=UTC)
    failed_delivery.save()
    page = admin_client.get("/admin/orgbilling/webhookdelivery/").content.decode()
    assert "Received (1)" in page and "Failed (1)" in page
    assert "Next attempt at" in page and "May 6, 2031, 7:08" in page
