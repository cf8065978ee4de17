"""Admin pages for support staff (issue 11, item 9): read-only rows, and actions each behind its own
permission and a confirmation page, on the default site and on a project's own AdminSite."""

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User

from orgbilling.models import AuditEvent, OpenedPage, Organization, Subscription, WebhookDelivery

pytestmark = pytest.mark.django_db

VIEW = ("view_organization", "view_subscription", "view_webhookdelivery", "view_auditevent")
ACTIONS = {  # permission codename -> (changelist, action)
    "resync_organization": ("/admin/orgbilling/organization/", "resync_from_chargebee"),
    "replay_webhookdelivery": ("/admin/orgbilling/webhookdelivery/", "replay_deliveries"),
    "open_in_chargebee": ("/admin/orgbilling/organization/", "open_in_chargebee"),
}


@pytest.fixture
def org():
    org = Organization.objects.create(id="org_1", display_name="Acme", chargebee_customer_id="cust_1")
    Subscription.objects.create(
        id="sub_1", organization=org, status="active", plan_id="team", seats=3, chargebee_subscription_id="cb_sub_1"
    )
    return org


@pytest.fixture
def failed_delivery():
    body = json.dumps({"id": "evt_9", "type": "user.signup", "data": {"id": "usr_1"}})
    return WebhookDelivery.objects.create(
        vendor="scalekit", event_id="evt_9", event_type="user.signup", body=body, status="failed", last_error="boom"
    )


def staff(*codenames: str) -> User:
    user = User.objects.create_user("support", password="pw", is_staff=True, email="sam@support.example")
    user.user_permissions.set(Permission.objects.filter(codename__in=(*VIEW, *codenames)))
    return user


def test_pages_render_for_a_superuser(admin_client, org, failed_delivery):
    page = admin_client.get("/admin/orgbilling/organization/")
    assert page.status_code == 200 and b"cust_1" in page.content
    detail = admin_client.get("/admin/orgbilling/organization/org_1/change/")
    assert detail.status_code == 200 and b"team" in detail.content  # subscriptions inline
    assert admin_client.get("/admin/orgbilling/organization/?q=Acme").status_code == 200
    assert admin_client.get("/admin/orgbilling/subscription/?status=active").status_code == 200
    OpenedPage.objects.create(vendor_id="hp_secret_1", kind="checkout", organization=org, subscription_id="sub_1")
    subscription = admin_client.get("/admin/orgbilling/subscription/sub_1/change/").content.decode()
    assert "sub_1" in subscription and "Created at" in subscription and "hp_secret_1" not in subscription
    assert "Created at" in detail.content.decode()
    assert admin_client.get("/admin/orgbilling/webhookdelivery/?vendor=scalekit&status=failed").status_code == 200
    body_page = admin_client.get(f"/admin/orgbilling/webhookdelivery/{failed_delivery.pk}/change/")
    assert body_page.status_code == 200
    assert b"&quot;type&quot;: &quot;user.signup&quot;" in body_page.content  # pretty-printed body


MIRRORED = [
    pytest.param("organization", "org_1", {"id": "org_2", "display_name": "Evil", "deleted_at_0": ""}, id="org"),
    pytest.param("subscription", "sub_1", {"status": "cancelled", "seats": "1", "organization": "org_1"}, id="sub"),
    pytest.param("webhookdelivery", None, {"status": "received", "vendor": "scalekit", "attempts": "0"}, id="delivery"),
]


def snapshot() -> list:
    return [
        list(Organization.objects.values()),
        list(Subscription.objects.values()),
        list(WebhookDelivery.objects.values()),
    ]


@pytest.mark.parametrize(("model", "pk", "edit"), MIRRORED)
def test_item9_mirrored_rows_and_deliveries_are_read_only(admin_client, org, failed_delivery, model, pk, edit):
    """No add, no change (the change page only shows), no delete, no bulk delete: even for a superuser."""
    pk = pk or failed_delivery.pk
    base = f"/admin/orgbilling/{model}/"
    before = snapshot()
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}add/", edit).status_code == 403
    view = admin_client.get(f"{base}{pk}/change/")
    assert view.status_code == 200 and b'name="_save"' not in view.content
    assert admin_client.post(f"{base}{pk}/change/", edit).status_code == 403
    assert admin_client.get(f"{base}{pk}/delete/").status_code == 403
    assert admin_client.post(f"{base}{pk}/delete/", {"post": "yes"}).status_code == 403
    listing = admin_client.get(base)
    assert b"delete_selected" not in listing.content
    bulk = admin_client.post(base, {"action": "delete_selected", "_selected_action": [pk], "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert snapshot() == before


def action_post(client, url: str, action: str, pks: list, confirmed: bool):
    data = {"action": action, "_selected_action": pks}
    if confirmed:
        data["confirmed"] = "yes"
    return client.post(url, data)


def test_replay_asks_for_confirmation_then_runs_the_delivery_code(client, failed_delivery):
    client.force_login(staff("replay_webhookdelivery"))
    url = "/admin/orgbilling/webhookdelivery/"
    page = action_post(client, url, "replay_deliveries", [failed_delivery.pk], confirmed=False)
    assert page.status_code == 200 and b"Yes, I" in page.content
    failed_delivery.refresh_from_db()
    assert failed_delivery.status == "failed"  # nothing ran yet
    action_post(client, url, "replay_deliveries", [failed_delivery.pk], confirmed=True)
    failed_delivery.refresh_from_db()
    assert (failed_delivery.status, failed_delivery.attempts) == ("ignored", 1)


@pytest.mark.parametrize("permission", list(ACTIONS))
def test_item9_each_action_needs_its_own_permission(client, org, failed_delivery, permission):
    """Staff holding every other action's permission neither see this action nor can post it."""
    client.force_login(staff(*(other for other in ACTIONS if other != permission)))
    url, action = ACTIONS[permission]
    listing = client.get(url)
    assert listing.status_code == 200 and f'value="{action}"' not in listing.content.decode()
    pk = failed_delivery.pk if "webhookdelivery" in url else "org_1"
    page = action_post(client, url, action, [pk], confirmed=True)
    assert page.status_code in (200, 302) and b"Yes, I" not in page.content and b"chargebee.com" not in page.content
    failed_delivery.refresh_from_db()
    assert failed_delivery.status == "failed" and not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("url", "pk", "expected"),
    [
        ("/admin/orgbilling/organization/", "org_1", "https://acme-test.chargebee.com/d/customers/cust_1"),
        ("/admin/orgbilling/subscription/", "sub_1", "https://acme-test.chargebee.com/d/subscriptions/cb_sub_1"),
    ],
)
def test_item9_open_in_chargebee_is_a_page_of_dashboard_links(client, org, settings, url, pk, expected):
    settings.CHARGEBEE_SITE = "acme-test"
    client.force_login(staff("open_in_chargebee"))
    listing = client.get(url).content.decode()
    assert "chargebee.com" not in listing  # only behind the action's permission
    page = action_post(client, url, "open_in_chargebee", [pk], confirmed=False).content.decode()
    assert f'href="{expected}" target="_blank" rel="noopener noreferrer"' in page


def test_item9_open_in_chargebee_says_what_is_missing(client, org, settings):
    Subscription.objects.create(id="sub_waiting", organization=org, status="future")
    client.force_login(staff("open_in_chargebee"))
    page = action_post(client, "/admin/orgbilling/subscription/", "open_in_chargebee", ["sub_waiting"], False)
    assert "not in Chargebee yet" in page.content.decode()
    settings.CHARGEBEE_SITE = ""
    page = action_post(client, "/admin/orgbilling/subscription/", "open_in_chargebee", ["sub_1"], False)
    assert "CHARGEBEE_SITE is not set" in page.content.decode()


@pytest.mark.urls("tests.support_site_urls")
def test_item9_actions_work_on_a_projects_own_admin_site(client, org, failed_delivery, settings):
    """Confirmation pages render with that site's header and post back to it; links stay on it."""
    settings.CHARGEBEE_SITE = "acme-test"
    client.force_login(staff(*ACTIONS))
    url = "/support/orgbilling/webhookdelivery/"
    page = action_post(client, url, "replay_deliveries", [failed_delivery.pk], confirmed=False).content.decode()
    assert "Acme support desk" in page and "Django administration" not in page
    assert 'href="/support/"' in page and "Yes, I" in page
    done = action_post(client, url, "replay_deliveries", [failed_delivery.pk], confirmed=True)
    assert done.status_code == 302 and done["Location"] == url
    failed_delivery.refresh_from_db()
    assert failed_delivery.status == "ignored"
    links = action_post(client, "/support/orgbilling/organization/", "open_in_chargebee", ["org_1"], False)
    assert "Acme support desk" in links.content.decode() and "/d/customers/cust_1" in links.content.decode()
    resync = action_post(client, "/support/orgbilling/organization/", "resync_from_chargebee", ["org_1"], False)
    assert "Acme support desk" in resync.content.decode()
    detail = client.get("/support/orgbilling/organization/org_1/change/").content.decode()
    assert "/support/orgbilling/auditevent/?organization__exact=org_1" in detail


def test_the_delivery_list_counts_pending_and_failed_and_shows_the_next_attempt(admin_client, failed_delivery):
    WebhookDelivery.objects.create(vendor="chargebee", event_id="ev_1", event_type="x", body="{}")
    failed_delivery.next_attempt_at = datetime(2031, 5, 6, 7, 8, tzinfo=UTC)
    failed_delivery.save()
    page = admin_client.get("/admin/orgbilling/webhookdelivery/").content.decode()
    assert "Received (1)" in page and "Failed (1)" in page
    assert "Next attempt at" in page and "May 6, 2031, 7:08" in page
