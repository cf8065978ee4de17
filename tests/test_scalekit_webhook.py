"""POST /api/webhooks/scalekit: authentication, validation, and organization provisioning."""

import copy
import json

import pytest

from orgbilling.models import Organization, Subscription, WebhookDelivery
from tests.conftest import SCALEKIT_SECRET, sample, scalekit_headers

pytestmark = pytest.mark.django_db

CREATED = sample("scalekit/webhooks/organization.created.json")
UPDATED = sample("scalekit/webhooks/organization.updated.json")
DELETED = sample("scalekit/webhooks/organization.deleted.json")
ORG_ID = CREATED["data"]["id"]


def event(base: dict, event_id: str | None = None, **data) -> dict:
    """A copy of a vendor sample with another event id and some data fields replaced."""
    payload = copy.deepcopy(base)
    if event_id:
        payload["id"] = event_id
    payload["data"].update(data)
    return payload


def customer_creates(fake):
    return len(fake.calls("POST", "/customers"))


# -- authentication and validation: rejected deliveries write nothing ------------


def post_raw(client, body: bytes, headers: dict):
    return client.post("/api/webhooks/scalekit", body, content_type="application/json", **headers)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda h: h.pop("HTTP_WEBHOOK_SIGNATURE"), id="missing-signature"),
        pytest.param(lambda h: h.update(HTTP_WEBHOOK_SIGNATURE="v1,AAAA"), id="bad-signature"),
        pytest.param(lambda h: h.update(HTTP_WEBHOOK_ID="msg_other"), id="wrong-id"),
    ],
)
def test_bad_signature_is_401_and_writes_nothing(client, mutate):
    body = json.dumps(CREATED).encode()
    headers = scalekit_headers(body)
    mutate(headers)
    response = post_raw(client, body, headers)
    assert response.status_code == 401
    assert WebhookDelivery.objects.count() == 0 and Organization.objects.count() == 0


@pytest.fixture
def frozen_now(monkeypatch):
    """The signature check's wall clock, held still: a second ticking mid-test must not move the 300 s edge."""
    import types

    from orgbilling import scalekit_signature

    now = 1_790_000_000
    monkeypatch.setattr(scalekit_signature, "time", types.SimpleNamespace(time=lambda: float(now)))
    return now


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_or_future_timestamp_is_401(client, frozen_now, skew):
    body = json.dumps(CREATED).encode()
    response = post_raw(client, body, scalekit_headers(body, at=frozen_now - skew))
    assert response.status_code == 401
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize("skew", [-300, 300])
def test_timestamp_at_the_tolerance_edge_is_accepted(client, fake_chargebee, frozen_now, skew):
    body = json.dumps(CREATED).encode()
    response = post_raw(client, body, scalekit_headers(body, at=frozen_now - skew))
    assert response.status_code == 200
    assert WebhookDelivery.objects.count() == 1


def test_header_names_in_any_case_are_accepted(client, fake_chargebee):
    body = json.dumps(CREATED).encode()
    signed = scalekit_headers(body)
    # The WSGI environ always upper-cases; what matters is that we do not rely on the SDK's case-sensitive lookup.
    response = client.post(
        "/api/webhooks/scalekit",
        body,
        content_type="application/json",
        headers={
            "Webhook-Id": signed["HTTP_WEBHOOK_ID"],
            "WEBHOOK-TIMESTAMP": signed["HTTP_WEBHOOK_TIMESTAMP"],
            "webhook-signature": signed["HTTP_WEBHOOK_SIGNATURE"],
        },
    )
    assert response.status_code == 200


def test_rotated_secrets_are_all_accepted(client, settings, fake_chargebee):
    old = "whsec_b2xkc2VjcmV0"  # base64("oldsecret")
    settings.SCALEKIT_WEBHOOK_SECRET = f"{SCALEKIT_SECRET}, {old}"
    body = json.dumps(CREATED).encode()
    assert post_raw(client, body, scalekit_headers(body, secret=old)).status_code == 200
    settings.SCALEKIT_WEBHOOK_SECRET = SCALEKIT_SECRET
    body2 = json.dumps(event(UPDATED, "evt_rotated")).encode()
    assert post_raw(client, body2, scalekit_headers(body2, secret=old)).status_code == 401


def test_unconfigured_secret_refuses_everything(client, settings):
    settings.SCALEKIT_WEBHOOK_SECRET = ""
    body = json.dumps(CREATED).encode()
    assert post_raw(client, body, scalekit_headers(body)).status_code == 503
    assert WebhookDelivery.objects.count() == 0


def test_oversized_body_is_413(client, post_scalekit):
    body = json.dumps({"id": "evt_big", "type": "x", "pad": "a" * (1024 * 1024)}).encode()
    assert post_scalekit(body).status_code == 413
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xff\xfe{not utf-8", id="non-utf8"),
        pytest.param(b"{not json", id="bad-json"),
        pytest.param(b"[1, 2]", id="not-object"),
        pytest.param(json.dumps({"type": "organization.created"}).encode(), id="no-id"),
        pytest.param(json.dumps({"id": "evt_1"}).encode(), id="no-type"),
        pytest.param(json.dumps({"id": 5, "type": "organization.created"}).encode(), id="id-not-string"),
        pytest.param(json.dumps({"id": "evt_1", "type": "organization.created", "data": {}}).encode(), id="no-data-id"),
        pytest.param(
            json.dumps(
                {"id": "evt_1", "type": "organization.created", "data": {"id": "org_1", "update_time": "yesterday"}}
            ).encode(),
            id="bad-time",
        ),
        pytest.param(
            json.dumps(
                {"id": "evt_1", "type": "organization.created", "data": {"id": "org_1", "display_name": ["x"]}}
            ).encode(),
            id="name-not-string",
        ),
    ],
)
def test_malformed_signed_bodies_are_400(post_scalekit, body):
    response = post_scalekit(body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert WebhookDelivery.objects.count() == 0 and Organization.objects.count() == 0


def test_get_is_not_allowed(client):
    assert client.get("/api/webhooks/scalekit").status_code == 405


# -- organization.created ---------------------------------------------------------


def test_created_provisions_one_customer_named_after_the_organization(post_scalekit, fake_chargebee):
    response = post_scalekit(CREATED)
    assert response.status_code == 200, response.content
    org = Organization.objects.get(pk=ORG_ID)
    assert org.display_name == "AcmeCorp" and org.external_id == "org_external_123"
    assert org.chargebee_customer_id == ORG_ID
    [call] = fake_chargebee.calls("POST", "/customers")
    assert call.params["company"] == "AcmeCorp"  # data.display_name, not the event's "Organization Created"
    customer = fake_chargebee.get_customer(ORG_ID)
    assert customer["meta_data"] == {"organizationId": ORG_ID, "customerType": "organization"}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.event_type) == ("processed", 1, "organization.created")


def test_duplicate_delivery_changes_nothing(post_scalekit, fake_chargebee):
    assert post_scalekit(CREATED).status_code == 200
    fake_chargebee.reset_calls()
    second = post_scalekit(CREATED)
    assert second.status_code == 200 and second.json()["duplicate"] is True
    assert fake_chargebee.calls() == []
    assert WebhookDelivery.objects.get().attempts == 1


def test_failed_delivery_is_kept_and_healed_by_redelivery(post_scalekit, fake_chargebee):
    fake_chargebee.fail_next(10, status=503, path="/customers")
    first = post_scalekit(CREATED)
    assert first.status_code == 500
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and "503" in delivery.last_error or "Chargebee" in delivery.last_error
    org = Organization.objects.get(pk=ORG_ID)  # the intent was committed before the call, the customer not
    assert org.chargebee_customer_id is None and org.customer_request_key
    fake_chargebee.clear_faults()
    assert post_scalekit(CREATED).status_code == 200
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 2)
    assert Organization.objects.get(pk=ORG_ID).chargebee_customer_id == ORG_ID
    keys = {call.headers["chargebee-idempotency-key"] for call in fake_chargebee.calls("POST", "/customers")}
    assert keys == {org.customer_request_key}  # every try, before and after the failure, carried the recorded key


def test_transient_chargebee_errors_are_retried_with_one_idempotency_key(post_scalekit, fake_chargebee):
    fake_chargebee.fail_next(1, status=503, path="/customers")
    assert post_scalekit(CREATED).status_code == 200
    attempts = fake_chargebee.calls("POST", "/customers")
    assert len(attempts) == 2
    keys = {call.headers.get("chargebee-idempotency-key") for call in attempts}
    assert len(keys) == 1 and None not in keys


def test_existing_customer_with_our_id_is_adopted_not_duplicated(post_scalekit, fake_chargebee):
    fake_chargebee.create_customer(id=ORG_ID, company="AcmeCorp", meta_data={"organizationid": ORG_ID})
    assert post_scalekit(CREATED).status_code == 200
    assert Organization.objects.get(pk=ORG_ID).chargebee_customer_id == ORG_ID
    assert fake_chargebee.get_customer(ORG_ID)["meta_data"]["organizationId"] == ORG_ID


def test_customer_of_another_organization_is_not_adopted(post_scalekit, fake_chargebee):
    fake_chargebee.create_customer(id=ORG_ID, company="Other", meta_data={"organizationId": "org_other"})
    assert post_scalekit(CREATED).status_code == 500
    assert "another organization" in WebhookDelivery.objects.get().last_error


# -- organization.updated -----------------------------------------------------------


def test_update_renames_locally_and_in_chargebee(post_scalekit, fake_chargebee):
    post_scalekit(CREATED)
    renamed = event(UPDATED, display_name="Acme Inc", update_time="2025-12-10T08:00:00.000000001Z")
    assert post_scalekit(renamed).status_code == 200
    assert Organization.objects.get(pk=ORG_ID).display_name == "Acme Inc"
    assert fake_chargebee.get_customer(ORG_ID)["company"] == "Acme Inc"


def test_out_of_order_update_never_undoes_a_newer_one(post_scalekit, fake_chargebee):
    post_scalekit(CREATED)
    newer = event(UPDATED, "evt_new", display_name="Newest", update_time="2025-12-11T00:00:00Z")
    older = event(UPDATED, "evt_old", display_name="Older", update_time="2025-12-10T00:00:00Z")
    assert post_scalekit(newer).status_code == 200
    fake_chargebee.reset_calls()
    response = post_scalekit(older)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert Organization.objects.get(pk=ORG_ID).display_name == "Newest"
    assert fake_chargebee.get_customer(ORG_ID)["company"] == "Newest"
    assert fake_chargebee.calls() == []
    assert "stale" in WebhookDelivery.objects.get(event_id="evt_old").last_error


def test_update_before_create_provisions_and_late_create_keeps_the_newer_name(post_scalekit, fake_chargebee):
    post_scalekit(event(UPDATED, display_name="Renamed", update_time="2025-12-12T00:00:00Z"))
    assert post_scalekit(CREATED).json()["status"] == "ignored"
    assert Organization.objects.get(pk=ORG_ID).display_name == "Renamed"
    assert customer_creates(fake_chargebee) == 1


# -- organization.deleted -----------------------------------------------------------


def seed_subscriptions(fake, count: int, **kwargs):
    return [
        fake.create_subscription(customer_id=ORG_ID, item_price_id="team-plan-USD-monthly", quantity=1, **kwargs)
        for _ in range(count)
    ]


def test_delete_cancels_every_live_subscription_then_soft_deletes(post_scalekit, fake_chargebee):
    post_scalekit(CREATED)
    live = seed_subscriptions(fake_chargebee, 3)
    cancelled = seed_subscriptions(fake_chargebee, 1, status="cancelled")
    local = Subscription.objects.create(
        organization_id=ORG_ID, status="active", chargebee_subscription_id=live[0]["id"]
    )
    fake_chargebee.reset_calls()
    assert post_scalekit(DELETED).status_code == 200
    for sub in live + cancelled:
        assert fake_chargebee.get_subscription(sub["id"])["status"] == "cancelled"
    assert len(fake_chargebee.calls("POST", "/subscriptions/*")) == 3  # the already-cancelled one is left alone
    org = Organization.objects.get(pk=ORG_ID)
    assert org.deleted_at is not None
    local.refresh_from_db()
    assert local.status == "cancelled" and not org.subscribed()


def test_delete_lists_subscriptions_page_by_page(post_scalekit, fake_chargebee, settings):
    settings.ORGBILLING_VENDOR_TIME_BUDGET = 600  # one attempt, however slow the machine
    post_scalekit(CREATED)
    seed_subscriptions(fake_chargebee, 101)  # one more than a page
    fake_chargebee.reset_calls()
    assert post_scalekit(DELETED).status_code == 200
    assert len(fake_chargebee.calls("GET", "/subscriptions")) == 2


def test_chargebee_failing_midway_fails_the_delivery_and_replay_finishes(post_scalekit, fake_chargebee):
    from django.core.management import call_command

    post_scalekit(CREATED)
    subs = seed_subscriptions(fake_chargebee, 3)
    fake_chargebee.fail_after(1, count=20, status=500, path="/subscriptions/*")  # first cancel works, then errors
    assert post_scalekit(DELETED).status_code == 500
    delivery = WebhookDelivery.objects.get(event_id=DELETED["id"])
    assert delivery.status == "failed"
    assert Organization.objects.get(pk=ORG_ID).deleted_at is not None  # recorded before the first call
    assert sum(fake_chargebee.get_subscription(s["id"])["status"] == "cancelled" for s in subs) == 1

    fake_chargebee.clear_faults()
    call_command("orgbilling_replay", "--failed")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 2)
    assert all(fake_chargebee.get_subscription(s["id"])["status"] == "cancelled" for s in subs)
    assert Organization.objects.get(pk=ORG_ID).deleted_at is not None


def test_deleted_organization_is_never_provisioned_again(post_scalekit, fake_chargebee):
    assert post_scalekit(DELETED).status_code == 200  # deletion first: created is a late retry
    response = post_scalekit(CREATED)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert customer_creates(fake_chargebee) == 0
    assert Organization.objects.get(pk=ORG_ID).is_deleted


def test_other_event_types_are_recorded_as_ignored(post_scalekit):
    membership = sample("scalekit/webhooks/user.organization_membership_created.json")
    response = post_scalekit(membership)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert WebhookDelivery.objects.get().status == "ignored"
