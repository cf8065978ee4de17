"""POST /api/webhooks/chargebee: auth, validation, every event of the issue's table, ordering, replay, strict mode."""

from __future__ import annotations

import json
import threading

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client

from orgbilling import chargebee_events
from orgbilling.chargebee_snapshot import SubscriptionSnapshot
from orgbilling.models import Organization, Subscription, WebhookDelivery
from tests.chargebee_payloads import (
    CUSTOMER_ID,
    MONTH,
    ORG_ID,
    PLAN,
    START,
    basic_auth,
    pc2_customer,
    pc2_event,
    pc2_subscription,
    post_event,
    signal_log,
    vendor_event,
)
from tests.conftest import CHARGEBEE_PASSWORD, CHARGEBEE_USER

pytestmark = pytest.mark.django_db


sent = pytest.fixture(signal_log, name="sent")


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    """Deliver a body as Chargebee would; the on-commit signals run as after a real commit."""

    def run(payload: dict | bytes, **headers):
        with django_capture_on_commit_callbacks(execute=True):
            return post_event(client, payload, **headers)

    return run


def organization(customer_id: str = CUSTOMER_ID, org_id: str = ORG_ID) -> Organization:
    return Organization.objects.create(id=org_id, display_name="Acme", chargebee_customer_id=customer_id)


def synced_row(event: dict, status: str, *, org: Organization | None = None, **fields) -> Subscription:
    """The local row of the event's subscription as an older snapshot left it."""
    subscription = event["content"]["subscription"]
    org = org or organization(subscription["customer_id"])
    return Subscription.objects.create(
        id=subscription["id"],
        organization=org,
        chargebee_subscription_id=subscription["id"],
        status=status,
        resource_version=subscription["resource_version"] - 1,
        **fields,
    )


def assert_row_is_snapshot(row: Subscription, subscription: dict, **read) -> None:
    row.refresh_from_db()
    expected = SubscriptionSnapshot.read(subscription, **read).fields
    assert {name: getattr(row, name) for name in expected} == expected


def delivery() -> WebhookDelivery:
    return WebhookDelivery.objects.get()


# -- authentication ----------------------------------------------------------------------


def test_missing_credentials_are_refused_with_a_challenge_and_nothing_is_written(post):
    response = post(vendor_event("subscription_created"), HTTP_AUTHORIZATION=None)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="orgbilling"'
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    "authorization",
    [
        basic_auth(CHARGEBEE_USER, "wrong-password")["HTTP_AUTHORIZATION"],
        basic_auth("someone-else", CHARGEBEE_PASSWORD)["HTTP_AUTHORIZATION"],
        basic_auth("", "")["HTTP_AUTHORIZATION"],
        f"Bearer {CHARGEBEE_PASSWORD}",
        "Basic not-base64!",
        "Basic " + "bm8tY29sb24=",  # "no-colon"
        "Basic //79",  # not UTF-8
    ],
)
def test_wrong_credentials_are_refused(post, authorization):
    response = post(vendor_event("subscription_created"), HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Basic")
    assert not WebhookDelivery.objects.exists()


def test_credentials_rotate_through_lists(post, settings):
    settings.CHARGEBEE_WEBHOOK_USERNAME = "old-user, new-user"
    settings.CHARGEBEE_WEBHOOK_PASSWORD = ["old-pass", "new-pass"]
    assert post(pc2_event("customer_changed"), **basic_auth("old-user", "old-pass")).status_code == 200
    assert post(pc2_event("customer_changed"), **basic_auth("new-user", "new-pass")).status_code == 200
    settings.CHARGEBEE_WEBHOOK_USERNAME, settings.CHARGEBEE_WEBHOOK_PASSWORD = "new-user", "new-pass"
    assert post(pc2_event("customer_changed"), **basic_auth("old-user", "old-pass")).status_code == 401
    assert WebhookDelivery.objects.count() == 2


@pytest.mark.parametrize("unset", ["CHARGEBEE_WEBHOOK_USERNAME", "CHARGEBEE_WEBHOOK_PASSWORD"])
def test_without_configured_credentials_every_delivery_is_refused(post, settings, unset):
    setattr(settings, unset, "")
    response = post(vendor_event("subscription_created"))
    assert response.status_code == 503
    assert not WebhookDelivery.objects.exists()


def test_credentials_are_checked_before_the_body_is_read(post, settings):
    settings.ORGBILLING_WEBHOOK_MAX_BYTES = 100
    assert post(b"x" * 1000, HTTP_AUTHORIZATION="Basic eDp5").status_code == 401


def test_only_post_is_allowed(client):
    assert client.get("/api/webhooks/chargebee", **basic_auth()).status_code == 405


# -- malformed and oversized bodies --------------------------------------------------------

VALID = pc2_event("subscription_changed", pc2_subscription())


def _without(key: str) -> dict:
    return {name: value for name, value in VALID.items() if name != key}


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{}",
        b"not json",
        b"[1, 2]",
        b'"a string"',
        json.dumps(_without("id")).encode(),
        json.dumps({**VALID, "id": "  "}).encode(),
        json.dumps({**VALID, "id": "ev_" + "x" * 300}).encode(),
        json.dumps(_without("event_type")).encode(),
        json.dumps({**VALID, "event_type": 7}).encode(),
        json.dumps(_without("content")).encode(),
        json.dumps({**VALID, "content": ["subscription"]}).encode(),
        json.dumps({**VALID, "content": {"subscription": "sub_1"}}).encode(),
        json.dumps({**VALID, "content": {"subscription": {"status": "active"}}}).encode(),
        json.dumps({**VALID, "content": {"subscription": {"id": "s" * 51}}}).encode(),
        json.dumps({**VALID, "content": {"customer": []}}).encode(),
        json.dumps({**VALID, "content": {"customer": pc2_customer()}}).encode(),  # no subscription
        json.dumps({**VALID, "event_type": "customer_deleted", "content": {"subscriptions": []}}).encode(),
        json.dumps(
            {**VALID, "event_type": "customer_deleted", "content": {"customer": pc2_customer(), "subscriptions": {}}}
        ).encode(),
    ],
)
def test_malformed_bodies_are_400_and_write_nothing(post, body):
    response = post(body)
    assert response.status_code == 400, response.content
    assert "error" in response.json()
    assert not WebhookDelivery.objects.exists() and not Subscription.objects.exists()


@pytest.mark.parametrize("limit", [None, 4096])
def test_oversized_bodies_are_413_and_write_nothing(post, settings, limit):
    if limit:
        settings.ORGBILLING_WEBHOOK_MAX_BYTES = limit
    size = limit or 1024 * 1024
    body = json.dumps({**VALID, "padding": "x" * size}).encode()
    assert post(body).status_code == 413
    assert not WebhookDelivery.objects.exists()


# -- every row of the table --------------------------------------------------------------------


def test_subscription_created_links_the_waiting_checkout_row(post, sent):
    event = vendor_event("subscription_created")
    org = organization(event["content"]["customer"]["id"])
    row = Subscription.objects.create(organization=org)
    response = post(event)
    assert response.status_code == 200
    assert response.json() == {"eventId": event["id"], "status": "processed", "duplicate": False}
    assert Subscription.objects.get().pk == row.pk
    assert_row_is_snapshot(row, event["content"]["subscription"])
    assert row.chargebee_subscription_id == "AzqgumSAxXl3xAxW"
    assert sent == []  # still "future": nothing to announce


def test_pc2_subscription_created_links_the_pending_row_of_the_customer_meta_data(post, sent):
    org = Organization.objects.create(id=ORG_ID)
    Subscription.objects.create(organization=org, id="sub_other_placeholder")
    row = Subscription.objects.create(organization=org, id="sub_pending")
    customer = pc2_customer(meta_data=json.dumps({"organizationId": ORG_ID, "pendingSubscriptionId": "sub_pending"}))
    event = pc2_event("subscription_created", pc2_subscription("cb_generated", status="in_trial"), customer)
    assert post(event).json()["status"] == "processed"
    assert_row_is_snapshot(row, event["content"]["subscription"])
    assert row.chargebee_subscription_id == "cb_generated"
    assert sent == [("trial_started", "sub_pending", None)]


def test_vendor_started_then_activated_signal_trial_then_completion(post, sent):
    started, activated = vendor_event("subscription_started"), vendor_event("subscription_activated")
    organization(started["content"]["customer"]["id"])
    assert post(started).json()["status"] == "processed"
    assert post(activated).json()["status"] == "processed"
    row = Subscription.objects.get()
    assert_row_is_snapshot(row, activated["content"]["subscription"])
    assert sent == [
        ("trial_started", row.pk, None),
        ("subscription_complete", row.pk, "in_trial"),
        ("trial_ended", row.pk, "in_trial"),
    ]


@pytest.mark.parametrize("event_type", ["subscription_started", "subscription_activated"])
def test_pc2_started_and_activated_signal_completion(post, sent, event_type):
    before = "future" if event_type == "subscription_started" else "in_trial"
    event = pc2_event(event_type, pc2_subscription(version=2))
    row = synced_row(event, before)
    assert post(event).json()["status"] == "processed"
    assert_row_is_snapshot(row, event["content"]["subscription"])
    assert sent.names()[0] == "subscription_complete"


@pytest.mark.parametrize(
    ("event_type", "before"),
    [
        ("subscription_changed", "future"),
        ("subscription_renewed", "active"),
        ("subscription_reactivated", "cancelled"),
        ("subscription_paused", "active"),
        ("subscription_resumed", "paused"),
    ],
)
def test_vendor_update_events_apply_and_signal_the_update(post, sent, event_type, before):
    event = vendor_event(event_type)
    row = synced_row(event, before)
    assert post(event).json()["status"] == "processed"
    assert_row_is_snapshot(row, event["content"]["subscription"])
    assert sent == [("subscription_updated", row.pk, before)]


@pytest.mark.parametrize(
    ("event_type", "before", "after"),
    [
        ("subscription_changed", "active", {"seats": 10, "addons": ("sso-addon",)}),
        (
            "subscription_renewed",
            "active",
            {"current_term_start": START + MONTH, "current_term_end": START + 2 * MONTH},
        ),
        ("subscription_reactivated", "cancelled", {}),
        ("subscription_paused", "active", {"status": "paused"}),
        ("subscription_resumed", "paused", {}),
        ("subscription_cancellation_scheduled", "active", {"status": "non_renewing", "cancelled_at": START + MONTH}),
        ("subscription_scheduled_cancellation_removed", "non_renewing", {}),
    ],
)
def test_pc2_update_events_apply_and_signal_the_update(post, sent, event_type, before, after):
    event = pc2_event(event_type, pc2_subscription(version=2, **after))
    row = synced_row(event, before)
    assert post(event).json()["status"] == "processed"
    assert_row_is_snapshot(row, event["content"]["subscription"])
    assert sent == [("subscription_updated", row.pk, before)]


@pytest.mark.parametrize(
    "event",
    [
        vendor_event("subscription_cancelled"),
        pc2_event("subscription_cancelled", pc2_subscription(status="cancelled", cancelled_at=START + 5, version=2)),
    ],
)
def test_subscription_cancelled_signals_revocation(post, sent, event):
    row = synced_row(event, "active")
    assert post(event).json()["status"] == "processed"
    assert_row_is_snapshot(row, event["content"]["subscription"])
    assert not row.is_active
    assert sent == [("subscription_cancelled", row.pk, "active")]


@pytest.mark.parametrize(
    "event",
    [vendor_event("subscription_deleted"), pc2_event("subscription_deleted", pc2_subscription(status="in_trial"))],
)
def test_subscription_deleted_marks_the_row_deleted_and_unlinks_it(post, sent, event):
    row = synced_row(event, "in_trial")
    assert post(event).json()["status"] == "processed"
    assert_row_is_snapshot(row, event["content"]["subscription"], deleted=True)
    assert (row.status, row.chargebee_subscription_id, row.deleted_at is not None) == ("cancelled", None, True)
    assert sent.names() == ["subscription_cancelled", "subscription_deleted", "trial_ended"]


def test_customer_changed_of_a_known_customer_changes_nothing(post, sent):
    event = vendor_event("customer_changed")
    org = organization(event["content"]["customer"]["id"])
    assert post(event).json()["status"] == "processed"
    assert Organization.objects.get() == org and not Subscription.objects.exists() and sent == []


@pytest.mark.parametrize("event_type", ["customer_changed", "customer_deleted"])
def test_customer_events_of_an_unknown_customer_are_ignored_with_the_reason(post, event_type):
    event = vendor_event(event_type)
    assert post(event).json()["status"] == "ignored"
    assert delivery().last_error.startswith("unknown customer")


@pytest.mark.parametrize("stored_version", [True, False])
def test_customer_deleted_marks_the_subscriptions_it_lists_and_unmaps_a_placed_customer(post, sent, stored_version):
    event = vendor_event("customer_deleted")
    customer = event["content"]["customer"]
    org = organization(customer["id"])
    if stored_version:
        org.chargebee_customer_version = customer["resource_version"] - 1
        org.save()
    deleted = event["content"]["subscriptions"][0]
    row = Subscription.objects.create(
        id="sub_local",
        organization=org,
        chargebee_subscription_id=deleted["id"],
        status="active",
        resource_version=deleted["resource_version"] - 1,
    )
    other = Subscription.objects.create(organization=org, status="active", resource_version=1)
    assert post(event).json()["status"] == "processed"
    org.refresh_from_db()
    # Without a stored version the event cannot be placed in time: only the subscriptions it lists change.
    assert org.chargebee_customer_id == (None if stored_version else customer["id"])
    assert_row_is_snapshot(row, deleted)
    assert (row.status, row.chargebee_subscription_id, row.deleted_at is not None) == ("cancelled", None, True)
    other.refresh_from_db()
    assert other.status == "active"  # not listed: Chargebee did not delete it with the customer
    assert sorted(sent) == sorted(
        [("subscription_cancelled", row.pk, "active"), ("subscription_deleted", row.pk, "active")]
    )


@pytest.mark.parametrize("event_type", ["customer_created", "subscription_trial_end_reminder"])
def test_other_event_types_are_ignored(post, sent, event_type):
    event = vendor_event(event_type)
    organization(event["content"]["customer"]["id"])
    response = post(event)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert delivery().last_error == f"event type {event_type} is not used by orgbilling"
    assert not Subscription.objects.exists() and sent == []


def test_a_subscription_of_an_unknown_customer_is_ignored(post, sent):
    """Like Chargebee's "test webhook" button: a valid event about nobody orgbilling bills."""
    response = post(vendor_event("subscription_created"))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert delivery().last_error.startswith("unknown customer")
    assert not Subscription.objects.exists() and sent == []


# -- duplicates, ordering, failures ---------------------------------------------------------------


def test_a_duplicate_delivery_changes_nothing_and_signals_nothing(post, sent):
    event = vendor_event("subscription_cancelled")
    synced_row(event, "active")
    assert post(event).json() == {"eventId": event["id"], "status": "processed", "duplicate": False}
    assert post(event).json() == {"eventId": event["id"], "status": "processed", "duplicate": True}
    assert delivery().attempts == 1
    assert sent.names() == ["subscription_cancelled"]


def test_an_older_event_arriving_late_is_ignored_as_stale(post, sent):
    organization()
    newer = pc2_event("subscription_changed", pc2_subscription(version=5, seats=5))
    older = pc2_event("subscription_changed", pc2_subscription(version=4, seats=4, status="paused"))
    post(newer)
    sent.clear()
    assert post(older).json()["status"] == "ignored"
    assert WebhookDelivery.objects.get(event_id=older["id"]).last_error.startswith("stale")
    assert Subscription.objects.get().seats == 5 and sent == []


def _break_apply(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(chargebee_events, "apply_subscription", broken)


def test_a_failed_delivery_is_kept_and_healed_by_redelivery(post, sent, monkeypatch):
    event = vendor_event("subscription_cancelled")
    row = synced_row(event, "active")
    _break_apply(monkeypatch)
    response = post(event)
    assert response.status_code == 500 and response.json()["status"] == "failed"
    assert (delivery().status, delivery().last_error) == ("failed", "RuntimeError: database went away")
    row.refresh_from_db()
    assert row.status == "active" and sent == []
    monkeypatch.undo()
    assert post(event).json() == {"eventId": event["id"], "status": "processed", "duplicate": False}
    assert (delivery().attempts, delivery().last_error) == (2, "")
    row.refresh_from_db()
    assert row.status == "cancelled" and sent.names() == ["subscription_cancelled"]


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ({"status": "suspended"}, "content.subscription"),
        ({"resource_version": 2**70}, "out of range"),  # refused by the JSON reader, before the snapshot is read
        ({"current_term_end": "tomorrow"}, "content.subscription"),
        ({"customer_id": "a\x00b"}, "content.subscription"),
    ],
)
def test_an_unreadable_snapshot_is_refused_before_anything_is_written(post, field, reason):
    organization()
    response = post(pc2_event("subscription_changed", pc2_subscription(**field)))
    assert response.status_code == 400 and reason in response.json()["error"]
    assert not WebhookDelivery.objects.exists() and not Subscription.objects.exists()


# -- replay ----------------------------------------------------------------------------------------


def test_replay_command_heals_a_failed_chargebee_delivery(post, sent, monkeypatch, django_capture_on_commit_callbacks):
    event = vendor_event("subscription_cancelled")
    row = synced_row(event, "active")
    _break_apply(monkeypatch)
    post(event)
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("orgbilling_replay", "--failed")
    assert delivery().status == "processed"
    row.refresh_from_db()
    assert row.status == "cancelled" and sent.names() == ["subscription_cancelled"]
    with django_capture_on_commit_callbacks(execute=True):
        call_command("orgbilling_replay", "--id", event["id"])
    assert delivery().attempts == 2 and sent.names() == ["subscription_cancelled"]


def test_admin_replay_action_runs_the_same_code(
    post, sent, monkeypatch, admin_client, django_capture_on_commit_callbacks
):
    event = vendor_event("subscription_cancelled")
    synced_row(event, "active")
    _break_apply(monkeypatch)
    post(event)
    monkeypatch.undo()
    form = {"action": "replay_deliveries", "_selected_action": [delivery().pk]}
    page = admin_client.post("/admin/orgbilling/webhookdelivery/", form)
    assert page.status_code == 200 and delivery().status == "failed"  # asks first
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/orgbilling/webhookdelivery/", {**form, "confirmed": "yes"})
    assert delivery().status == "processed" and sent.names() == ["subscription_cancelled"]


# -- strict mode and Chargebee calls -----------------------------------------------------------------


@pytest.fixture
def fake_events(fake_chargebee):
    """Events the fake Chargebee records, in order (PC 2.0 bodies written by the fake)."""
    events: list[dict] = []
    fake_chargebee.on_event(events.append)
    return events


def _created_event(fake_chargebee, fake_events) -> dict:
    organization()
    fake_chargebee.create_subscription(CUSTOMER_ID, PLAN, 4, id="cb_1")
    fake_chargebee.reset_calls()
    return next(event for event in fake_events if event["event_type"] == "subscription_created")


def test_by_default_a_webhook_makes_no_chargebee_call(post, fake_chargebee, fake_events):
    event = _created_event(fake_chargebee, fake_events)
    assert post(event).json()["status"] == "processed"
    assert Subscription.objects.get().seats == 4
    assert fake_chargebee.calls() == []


def test_strict_mode_applies_chargebees_copy_of_the_event(post, settings, fake_chargebee, fake_events):
    settings.ORGBILLING_CHARGEBEE_STRICT_WEBHOOKS = True
    event = _created_event(fake_chargebee, fake_events)
    tampered = json.loads(json.dumps(event))
    tampered["content"]["subscription"]["subscription_items"][0]["quantity"] = 999
    assert post(tampered).json()["status"] == "processed"
    assert Subscription.objects.get().seats == 4
    assert len(fake_chargebee.calls("GET", f"/events/{event['id']}")) == 1
    assert len(fake_chargebee.calls()) == 1


def test_strict_mode_ignores_an_event_chargebee_never_sent(post, settings, fake_chargebee):
    settings.ORGBILLING_CHARGEBEE_STRICT_WEBHOOKS = True
    organization()
    forged = pc2_event("subscription_created", pc2_subscription(), event_id="ev_forged")
    assert post(forged).json()["status"] == "ignored"
    assert delivery().last_error.startswith("strict mode: Chargebee has no event")
    assert not Subscription.objects.exists()


def test_strict_mode_fails_while_chargebee_is_down_and_replay_finishes(post, settings, fake_chargebee, fake_events):
    settings.ORGBILLING_CHARGEBEE_STRICT_WEBHOOKS = True
    event = _created_event(fake_chargebee, fake_events)
    fake_chargebee.fail_next(3, status=503, path="/events/*")
    assert post(event).status_code == 500
    assert not Subscription.objects.exists()
    call_command("orgbilling_replay", "--id", event["id"])
    assert delivery().status == "processed" and Subscription.objects.get().seats == 4


# -- concurrency (PostgreSQL) ----------------------------------------------------------------------------


def _post_concurrently(bodies: list[dict]) -> list:
    """POST each body from its own thread (own client, own connection), all released at once."""
    barrier = threading.Barrier(len(bodies))
    responses: list = [None] * len(bodies)

    def send(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            responses[index] = post_event(Client(), bodies[index])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks (SELECT ... FOR UPDATE) under concurrent writers need PostgreSQL; set DATABASE_URL",
)


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_copies_of_one_event_apply_once(sent):
    organization()
    event = pc2_event("subscription_activated", pc2_subscription(status="active"))
    responses = _post_concurrently([event] * 10)
    # A copy arriving during the attempt's lease is refused for a later retry (409); one arriving after it: 200.
    assert {response.status_code for response in responses} <= {200, 409}
    applied = [response for response in responses if response.status_code == 200 and not response.json()["duplicate"]]
    assert len(applied) == 1
    assert (delivery().status, delivery().attempts) == ("processed", 1)
    assert Subscription.objects.count() == 1
    assert sent.names() == ["subscription_complete"]


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_events_of_one_new_subscription_make_one_row(sent):
    organization()
    Subscription.objects.create(organization_id=ORG_ID, id="sub_checkout")
    bodies = [pc2_event("subscription_changed", pc2_subscription("cb_new", version=n, seats=n)) for n in range(1, 9)]
    responses = _post_concurrently(bodies)
    assert [response.status_code for response in responses] == [200] * 8
    row = Subscription.objects.get()
    assert (row.pk, row.chargebee_subscription_id, row.seats) == ("sub_checkout", "cb_new", 8)
    assert sent.names().count("subscription_complete") == 1
