"""Directory (SCIM) seats over real HTTP: the fake Scalekit's directory console sends the signed
organization.directory.user_* webhooks to the served project; orgbilling counts, blocks and releases."""

from __future__ import annotations

import io
import threading

import pytest
from django.core.management import call_command
from django.db import connection

from orgbilling import signals
from orgbilling.directory_seats import apply_directory_user
from orgbilling.models import DirectoryUser, Organization, WebhookDelivery
from sandbox import runtime, scim
from tests.chargebee_payloads import CUSTOMER_ID, pc2_customer, pc2_subscription
from tests.sandbox_support import served_app  # noqa: F401  (fixture)
from tests.test_seats import ORG, settle

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def acme(served_app, settings):  # noqa: F811
    """Acme Corp, 2 seats, directory seats on."""
    settings.ORGBILLING_SEAT_SOURCE = "directory"
    runtime.directory().create_organization("Acme Corp", org_id=ORG)
    organization = Organization.objects.create(id=ORG, display_name="Acme Corp", chargebee_customer_id=CUSTOMER_ID)
    apply_subscription_with_seats(2)
    organization.served = served_app
    return organization


@pytest.fixture
def sent():
    """(signal name, directory user email, used, limit) for every seat_limit_exceeded and seat_released."""
    seen: list[tuple] = []

    def exceeded(sender, organization, used, limit, directory_user, **kwargs):
        seen.append(("exceeded", directory_user.email, used, limit))

    def released(sender, organization, directory_user, **kwargs):
        seen.append(("released", directory_user.email, None, None))

    signals.seat_limit_exceeded.connect(exceeded, weak=False, dispatch_uid="test-exceeded")
    signals.seat_released.connect(released, weak=False, dispatch_uid="test-released")
    yield seen
    signals.seat_limit_exceeded.disconnect(dispatch_uid="test-exceeded")
    signals.seat_released.disconnect(dispatch_uid="test-released")


def blocked() -> list[str]:
    return sorted(DirectoryUser.objects.filter(blocked=True).values_list("email", flat=True))


def used() -> int:
    return Organization.objects.get(pk=ORG).seats_used


def test_an_arrival_beyond_the_limit_is_blocked_signalled_and_answered_200(acme, sent):
    for name in ("ann", "bob", "cat"):
        scim.add(ORG, f"{name}@acme.test")
    settle(acme.served)

    assert blocked() == ["cat@acme.test"] and used() == 2
    assert sent == [("exceeded", "cat@acme.test", 2, 2)]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"processed"}


def test_added_seats_release_blocked_users_in_arrival_order(acme, sent):
    for name in ("ann", "bob", "cat", "dan"):
        scim.add(ORG, f"{name}@acme.test")
    settle(acme.served)
    assert blocked() == ["cat@acme.test", "dan@acme.test"]

    apply_subscription_with_seats(3)

    assert blocked() == ["dan@acme.test"] and used() == 3
    assert sent[-1] == ("released", "cat@acme.test", None, None)


def apply_subscription_with_seats(seats: int) -> None:
    from orgbilling.subscription_sync import apply_subscription

    apply_subscription(pc2_subscription(seats=seats, version=seats), pc2_customer())


def test_a_user_leaving_frees_a_seat_for_the_first_blocked(acme, sent):
    users = [scim.add(ORG, f"{name}@acme.test") for name in ("ann", "bob", "cat", "dan")]
    settle(acme.served)
    scim.set_active(users[0]["id"], False)  # deactivated in the identity provider
    scim.remove(users[1]["id"])
    settle(acme.served)
    assert blocked() == [] and used() == 2
    assert [entry[:2] for entry in sent if entry[0] == "released"] == [
        ("released", "cat@acme.test"),
        ("released", "dan@acme.test"),
    ]
    scim.set_active(users[0]["id"], True)  # back, but the seats are taken now
    settle(acme.served)
    assert blocked() == ["ann@acme.test"]


def test_reordered_and_redelivered_events_cannot_drift_the_table(acme, post_scalekit, settings):
    secret = settings.SCALEKIT_WEBHOOK_SECRET.split(",")[0]

    def event(event_id: str, kind: str, at: str, **data) -> dict:
        data = {"id": "diruser_1", "organization_id": ORG, "email": "ann@acme.test", **data}
        return {"id": event_id, "type": f"organization.directory.user_{kind}", "occurred_at": at, "data": data}

    later = event("evt_2", "updated", "2026-01-01T10:00:00.000000002Z", active=False)
    earlier = event("evt_1", "created", "2026-01-01T10:00:00.000000001Z", active=True)
    assert post_scalekit(later, secret=secret).json()["status"] == "processed"
    response = post_scalekit(earlier, secret=secret)
    assert response.status_code == 200 and response.json()["status"] == "ignored"  # older: stale
    assert post_scalekit(later, secret=secret).json()["duplicate"] is True
    user = DirectoryUser.objects.get(pk="diruser_1")
    assert not user.active and used() == 0

    for broken in (event("evt_3", "created", "yesterday"), event("evt_4", "created", "2026-01-01T10:00:00Z", active=1)):
        assert post_scalekit(broken, secret=secret).status_code == 400
    settings.ORGBILLING_SEAT_SOURCE = "memberships"
    assert post_scalekit(event("evt_5", "created", "2026-01-02T00:00:00Z"), secret=secret).json()["status"] == "ignored"


def test_the_sync_lists_the_directory_and_repairs_what_webhooks_lost(acme):
    runtime.sender().knobs.drop_scalekit = True
    ann, _, _ = (scim.add(ORG, f"{name}@acme.test") for name in ("ann", "bob", "cat"))
    settle(acme.served)
    assert not DirectoryUser.objects.exists()

    output = io.StringIO()
    call_command("orgbilling_sync", "--seats", stdout=output, stderr=io.StringIO())
    assert output.getvalue().count("admitted: diruser_") == 2 and output.getvalue().count("blocked: diruser_") == 1
    assert used() == 2 and blocked() == ["cat@acme.test"]

    scim.remove(ann["id"])
    output = io.StringIO()
    call_command("orgbilling_sync", "--seats", stdout=output, stderr=io.StringIO())
    assert f"gone from the directory: {ann['id']}" in output.getvalue()
    assert used() == 2 and blocked() == []
    calls = runtime.scalekit_faults().calls
    assert ("GET", f"/api/v1/organizations/{ORG}/directories") in calls


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrent writers need PostgreSQL")
def test_twenty_arrivals_at_once_against_ten_free_seats(acme, sent):
    Organization.objects.filter(pk=ORG).update(seat_limit=10)
    start = threading.Barrier(20)

    def arrive(number: int) -> None:
        start.wait()
        try:
            apply_directory_user(
                ORG,
                f"diruser_{number}",
                email=f"u{number}@acme.test",
                active=True,
                deleted=False,
                event_time=number + 1,
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=arrive, args=(number,)) for number in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert DirectoryUser.objects.filter(blocked=False).count() == 10 and len(blocked()) == 10
    exceeded = [entry[1] for entry in sent if entry[0] == "exceeded"]
    assert sorted(exceeded) == blocked() and len(set(exceeded)) == 10 and used() == 10


def test_support_staff_see_blocked_users_and_the_api_counts_directory_seats(acme, admin_client):
    for name in ("ann", "bob", "cat"):
        scim.add(ORG, f"{name}@acme.test")
    settle(acme.served)

    listing = admin_client.get("/admin/orgbilling/directoryuser/?blocked__exact=1").content.decode()
    assert "cat@acme.test" in listing and "ann@acme.test" not in listing
    organization = Organization.objects.get(pk=ORG)
    assert (organization.seats_used, organization.seats_pending, organization.seat_limit) == (2, 0, 2)
