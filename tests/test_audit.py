"""The audit trail (issue 11, item 10): billing actions and staff actions recorded with who, what was asked and
what came back; nothing secret; kept across organization deletion; shown read-only in the admin."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth.models import Permission, User

from orgbilling import audit, checkout, provisioning
from orgbilling.admin import delivery_organization
from orgbilling.errors import BillingProblem
from orgbilling.middleware import BillingContext
from orgbilling.models import AuditEvent, Organization, Subscription, WebhookDelivery
from tests.billing_support import page_id

pytestmark = pytest.mark.django_db

PLAN = "team-plan-USD-monthly"


def ada(roles=("admin",)) -> BillingContext:
    organization = Organization.objects.get_or_create(id="org_1")[0]
    return BillingContext("usr_ada", "org_1", tuple(roles), (), "ada@acme.example", organization, bearer=True)


@pytest.fixture
def customer(fake_chargebee):
    organization = provisioning.ensure_customer("org_1", "Acme")
    fake_chargebee.reset_calls()
    return organization


def trail() -> list[tuple]:
    return list(
        AuditEvent.objects.order_by("id").values_list("action", "outcome", "organization_id", "user_id", "email")
    )


def test_item10_subscribe_change_and_portal_are_recorded_with_who_asked_what_and_what_came_back(
    customer, fake_chargebee
):
    hosted = checkout.start_checkout(ada(), plan_id=PLAN, seats=3)
    fake_chargebee.complete_hosted_page(page_id(hosted.url))
    checkout.complete_checkout(ada(), subscription_id=hosted.subscription_id, hosted_page_id=page_id(hosted.url))
    change = checkout.change_subscription(ada(), subscription_id=hosted.subscription_id, seats="1")
    portal_url = checkout.open_portal(ada())
    who = ("org_1", "usr_ada", "ada@acme.example")
    assert trail() == [("subscribe", "done", *who), ("change", "done", *who), ("portal", "done", *who)]
    subscribe_row, change_row, portal_row = AuditEvent.objects.order_by("id")
    assert subscribe_row.asked == {"reference_id": None, "plan_id": PLAN, "seats": 3}
    assert subscribe_row.answer == {"subscription_id": hosted.subscription_id}
    assert change_row.asked == {"subscription_id": hosted.subscription_id, "plan_id": None, "seats": "1"}
    assert change_row.answer == {"subscription_id": hosted.subscription_id}
    assert (portal_row.asked, portal_row.answer) == ({"reference_id": None}, {})
    # Nothing secret: no hosted-page id or URL, no portal URL or its token.
    stored = json.dumps(list(AuditEvent.objects.values()), default=str)
    portal_token = portal_url.rstrip("/").rsplit("/", 1)[-1]
    for secret in (hosted.url, page_id(hosted.url), change.url, page_id(change.url), portal_url, portal_token):
        assert secret not in stored


def test_item10_refusals_before_chargebee_are_not_recorded_and_chargebee_failures_are(customer, fake_chargebee):
    with pytest.raises(BillingProblem) as member:
        checkout.start_checkout(ada(roles=("member",)), seats=3)
    with pytest.raises(BillingProblem) as bad_seats:
        checkout.start_checkout(ada(), seats=0)
    assert (member.value.status, bad_seats.value.status) == (403, 400)
    assert trail() == []
    fake_chargebee.fail_next(5, status=500)
    with pytest.raises(BillingProblem) as failed:
        checkout.start_checkout(ada(), seats=3)
    assert failed.value.status == 502
    [row] = AuditEvent.objects.all()
    assert (row.action, row.outcome, row.user_id, row.asked["seats"]) == ("subscribe", "failed", "usr_ada", 3)
    assert row.answer == {"status": 502, "message": failed.value.message}


def test_item10_what_was_asked_is_bounded_and_storable():
    row = audit.record("change", asked={"plan_id": "x" * 10_000, "seats": float("nan"), "nested": {"a": [1]}})
    assert len(row.asked["plan_id"]) == audit.MAX_TEXT + 1
    assert row.asked["seats"] == "nan" and row.asked["nested"] == "{'a': [1]}"


def test_item10_an_unwritable_audit_row_does_not_fail_the_billing_action(customer, fake_chargebee, monkeypatch, caplog):
    """The action already happened at Chargebee: it answers normally, and the trail goes to the ERROR log."""
    monkeypatch.setattr(AuditEvent._meta, "db_table", "orgbilling_no_such_table")
    with caplog.at_level(logging.ERROR, logger="orgbilling.audit"):
        hosted = checkout.start_checkout(ada(), seats=3)
    assert Subscription.objects.filter(pk=hosted.subscription_id).exists()  # the caller's connection still works
    [record] = [r for r in caplog.records if r.name == "orgbilling.audit"]
    assert "audit event not written" in record.getMessage()
    assert "'subscribe'" in record.getMessage() and "usr_ada" in record.getMessage()
    assert hosted.url not in record.getMessage() and page_id(hosted.url) not in record.getMessage()


def test_item10_the_trail_survives_the_organization_deletion(admin_client):
    Organization.objects.create(id="org_gone", display_name="Gone")
    audit.record("portal", organization_id="org_gone", user_id="usr_1")
    Organization.objects.filter(id="org_gone").delete()
    [row] = AuditEvent.objects.all()
    assert row.organization_id == "org_gone"
    listing = admin_client.get("/admin/orgbilling/auditevent/?organization__exact=org_gone")
    assert listing.status_code == 200 and "org_gone" in listing.content.decode()
    assert admin_client.get(f"/admin/orgbilling/auditevent/{row.pk}/change/").status_code == 200


def support_staff() -> User:
    user = User.objects.create_user("sam", password="pw", is_staff=True, email="sam@support.example")
    codenames = ("view_organization", "view_webhookdelivery", "resync_organization", "replay_webhookdelivery")
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_item10_staff_resync_and_replay_are_recorded_with_the_staff_member(client, customer, fake_chargebee):
    client.force_login(support_staff())
    form = {"action": "resync_from_chargebee", "_selected_action": ["org_1"], "confirmed": "yes"}
    client.post("/admin/orgbilling/organization/", form)
    fake_chargebee.fail_next(5, status=500)
    client.post("/admin/orgbilling/organization/", form)
    body = json.dumps({"id": "evt_9", "type": "user.signup", "data": {"id": "usr_1"}})
    delivery = WebhookDelivery.objects.create(
        vendor="scalekit", event_id="evt_9", event_type="user.signup", body=body, status="failed"
    )
    replay = {"action": "replay_deliveries", "_selected_action": [delivery.pk], "confirmed": "yes"}
    client.post("/admin/orgbilling/webhookdelivery/", replay)
    rows = AuditEvent.objects.order_by("id")
    assert [(r.action, r.outcome, r.organization_id, r.staff_user, r.email) for r in rows] == [
        ("resync", "done", "org_1", "sam", "sam@support.example"),
        ("resync", "failed", "org_1", "sam", "sam@support.example"),
        ("replay", "done", None, "sam", "sam@support.example"),
    ]
    assert rows[0].answer["summary"].startswith("created 0, updated 0")
    assert rows[2].asked == {"vendor": "scalekit", "event_id": "evt_9", "event_type": "user.signup"}
    assert rows[2].answer["status"] == "ignored"


def test_item10_the_trail_is_read_only_on_the_organization_page_and_in_a_filterable_list(admin_client):
    Organization.objects.create(id="org_1", display_name="Acme")
    audit.record("change", organization_id="org_1", user_id="usr_ada", email="ada@acme.example", asked={"seats": 1})
    audit.record("resync", outcome="failed", organization_id="org_1", staff_user="sam")
    audit.record("portal", organization_id="org_2", user_id="usr_gina")
    page = admin_client.get("/admin/orgbilling/organization/org_1/change/").content.decode()
    assert "ada@acme.example" in page and "resync" in page and "usr_gina" not in page
    assert "audit_events-0-action" not in page  # shown, not editable

    def listed(query: str) -> set[str]:
        response = admin_client.get(f"/admin/orgbilling/auditevent/?{query}")
        assert response.status_code == 200
        return {str(row) for row in response.context["cl"].result_list}

    assert listed("") == {"change by ada@acme.example (done)", "resync by sam (failed)", "portal by usr_gina (done)"}
    assert listed("action=change") == {"change by ada@acme.example (done)"}
    assert listed("outcome=failed") == listed("by=staff") == {"resync by sam (failed)"}
    assert len(listed("by=member")) == 2
    assert listed("organization__exact=org_2") == listed("q=org_2") == {"portal by usr_gina (done)"}
    row = AuditEvent.objects.get(action="change")
    assert admin_client.get("/admin/orgbilling/auditevent/add/").status_code == 403
    assert admin_client.post(f"/admin/orgbilling/auditevent/{row.pk}/change/", {"action": "x"}).status_code == 403
    assert admin_client.post(f"/admin/orgbilling/auditevent/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=row.pk, action="change").exists()


@pytest.mark.parametrize(
    ("vendor", "body", "expected"),
    [
        ("chargebee", {"content": {"subscription": {"id": "cb_1", "customer_id": "cust_1"}}}, "org_1"),
        ("chargebee", {"content": {"customer": {"id": "cust_1"}}}, "org_1"),
        ("chargebee", {"content": {"customer": {"id": "cust_stranger"}}}, ""),
        ("scalekit", {"type": "organization.updated", "data": {"id": "org_9"}}, "org_9"),
        ("scalekit", {"type": "user.signup", "data": {"id": "usr_1"}}, ""),
        ("scalekit", ["not", "an", "object"], ""),
    ],
)
def test_item10_a_replay_is_recorded_under_the_organization_its_delivery_concerns(vendor, body, expected):
    Organization.objects.create(id="org_1", chargebee_customer_id="cust_1")
    delivery = WebhookDelivery(vendor=vendor, event_id="ev_1", event_type="x", body=json.dumps(body))
    assert delivery_organization(delivery) == expected
    assert delivery_organization(WebhookDelivery(vendor=vendor, body="{not json")) == ""
