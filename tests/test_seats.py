"""Seats over real HTTP: the whole project served with the sandbox's fake Scalekit, which holds the cap it was
sent, lists members with Scalekit's shapes, enforces the cap, and sends the membership webhooks."""

from __future__ import annotations

import io
import json
import threading
from datetime import timedelta

import httpx
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orgbilling import signals
from orgbilling.errors import BillingProblem
from orgbilling.models import Organization, SeatLimitStatus, Subscription, WebhookDelivery
from orgbilling.seat_counts import check_seat_floor, count_members
from orgbilling.seat_limits import send_limit, wanted_limit
from orgbilling.subscription_sync import apply_subscription
from sandbox import organizations, runtime
from sandbox.scalekit_directory import DirectoryError
from tests.chargebee_payloads import CUSTOMER_ID, pc2_customer, pc2_subscription
from tests.conftest import scalekit_headers
from tests.sandbox_support import served_app  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

ORG = "org_80000000000000001"
SETTINGS_PATH = f"/api/v1/organizations/{ORG}/settings/usermanagement"


def settle(app) -> None:
    """Wait for the fake's webhooks and for what the app does after answering them (the inline recount)."""
    assert runtime.sender().wait_idle(20) and app.server.wait_idle(20)


@pytest.fixture
def acme(served_app):  # noqa: F811
    """Acme Corp in the fake Scalekit (Ada and Max are members) and here, billed through CUSTOMER_ID."""
    directory = runtime.directory()
    directory.create_organization("Acme Corp", org_id=ORG)
    for email in ("ada@acme.test", "max@acme.test"):
        directory.join(ORG, email, "ACTIVE")
    acme = Organization.objects.create(id=ORG, display_name="Acme Corp", chargebee_customer_id=CUSTOMER_ID)
    acme.served = served_app
    return acme


@pytest.fixture
def changes():
    """Every seat_limit_changed sent, as (limit, previous)."""
    seen: list[tuple] = []

    def receiver(sender, organization, limit, previous, **kwargs):
        seen.append((limit, previous))

    signals.seat_limit_changed.connect(receiver, weak=False, dispatch_uid="test-seat-limit")
    yield seen
    signals.seat_limit_changed.disconnect(dispatch_uid="test-seat-limit")


def subscribe(seats: int, version: int, **fields) -> None:
    apply_subscription(pc2_subscription(seats=seats, version=version, **fields), pc2_customer())


def cap() -> int | None:
    return runtime.directory().organization(ORG).get("max_allowed_users")


def patches() -> int:
    return runtime.scalekit_faults().count("PATCH", SETTINGS_PATH)


def sync(*args: str) -> str:
    out = io.StringIO()
    call_command("orgbilling_sync", "--seats", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- the limit ---------------------------------------------------------------------------------------------------


def test_purchased_seats_become_scalekits_cap_once_per_change(acme, changes):
    subscribe(3, version=1)

    acme.refresh_from_db()
    assert cap() == 3 and acme.seat_limit == 3
    assert acme.seat_limit_status == SeatLimitStatus.CONFIRMED and acme.seat_limit_confirmed_at
    assert changes == [(3, None)]

    subscribe(3, version=1)  # a duplicate: stale, nothing sent
    subscribe(3, version=2, current_term_end=2_000_000_000)  # newer, same seats: nothing sent
    assert patches() == 1

    subscribe(5, version=3)
    assert cap() == 5 and changes == [(3, None), (5, 3)] and patches() == 2


def test_cancellation_lifts_the_cap_or_falls_to_the_free_tier(acme, changes, settings):
    subscribe(3, version=1)
    subscribe(3, version=2, status="cancelled")
    assert cap() == 0  # Scalekit's "no limit"
    assert Organization.objects.get(pk=ORG).seat_limit is None
    settings.ORGBILLING_SEATS_WITHOUT_SUBSCRIPTION = 2
    subscribe(3, version=3)
    subscribe(3, version=4, status="cancelled")
    assert cap() == 2 and changes == [(3, None), (None, 3), (3, None), (2, 3)]


def test_an_event_that_leaves_the_seats_alone_reads_no_subscriptions_for_the_cap(acme, changes, settings):
    subscribe(3, version=1)
    with CaptureQueriesContext(connection) as queries:
        subscribe(3, version=2, current_term_end=2_000_000_000)  # a renewal: the period moves, the seats do not
    assert not [q for q in queries if q["sql"].startswith('SELECT "orgbilling_subscription"."items"')]  # wanted_limit
    # So a setting changed alone moves the cap at the seat pass, not at whichever event comes next.
    subscribe(3, version=3, status="cancelled")
    settings.ORGBILLING_SEATS_WITHOUT_SUBSCRIPTION = 2
    subscribe(3, version=4, status="cancelled", cancelled_at=1_800_000_000)
    assert cap() == 0
    sync()
    assert cap() == 2 and changes[-1] == (2, None)


def test_a_limit_never_set_is_set_by_the_next_event_even_with_the_seats_unchanged(acme, changes):
    subscribe(3, version=1)
    Organization.objects.filter(pk=ORG).update(seat_limit=None, seat_limit_status=SeatLimitStatus.UNSET)
    subscribe(3, version=2, current_term_end=2_000_000_000)
    assert Organization.objects.get(pk=ORG).seat_limit == 3


def test_which_subscriptions_entitle_and_flat_fee_plans(acme, settings):
    settings.ORGBILLING_PLANS = [{"id": "flat", "name": "Flat", "min_seats": 1, "max_seats": 25}]
    for status, seats in (("active", 2), ("in_trial", 3), ("non_renewing", 4), ("future", 50), ("paused", 60)):
        items = [{"item_price_id": "p", "item_type": "plan", "quantity": seats}, {"item_type": "addon", "quantity": 9}]
        Subscription.objects.create(organization=acme, status=status, seats=seats, items=items)
    Subscription.objects.create(organization=acme, status="cancelled", seats=70)
    assert wanted_limit(acme) == 9
    Subscription.objects.create(
        organization=acme, status="active", items=[{"item_price_id": "flat", "item_type": "plan", "quantity": None}]
    )
    assert wanted_limit(acme) == 34
    Subscription.objects.create(
        organization=acme, status="active", items=[{"item_price_id": "other", "item_type": "plan", "quantity": None}]
    )
    assert wanted_limit(acme) is None  # a flat fee the catalog does not know: no cap rather than a lockout


def test_a_failed_send_stays_pending_and_the_sync_heals_it(acme):
    runtime.scalekit_faults().fail_next(10, 503, path=SETTINGS_PATH)
    subscribe(3, version=1)
    acme.refresh_from_db()
    assert acme.seat_limit_status == SeatLimitStatus.PENDING and "503" in acme.seat_limit_error
    assert cap() is None

    runtime.scalekit_faults().clear()
    output = sync()

    acme.refresh_from_db()
    assert cap() == 3 and acme.seat_limit_status == SeatLimitStatus.CONFIRMED
    assert "failed 0" in output
    sync()
    assert patches() == 3 + 1  # three tries, one healing send, nothing for a confirmed limit


def test_a_404_marks_the_limit_rejected_and_it_is_not_retried(acme):
    runtime.scalekit_faults().fail_next(1, 404, path=SETTINGS_PATH)
    subscribe(3, version=1)
    acme.refresh_from_db()
    assert acme.seat_limit_status == SeatLimitStatus.REJECTED and "404" in acme.seat_limit_error
    sync()
    assert patches() == 1


def test_concurrent_sends_converge_on_the_newest_wanted_limit(acme):
    """A send of 5 is held by Scalekit while 7 is wanted and sent; the held one lands last, and is corrected."""
    hold = runtime.scalekit_faults().hold_next(30, path=SETTINGS_PATH)
    first = threading.Thread(target=subscribe, args=(5, 1))
    first.start()
    assert hold.reached.wait(20)

    subscribe(7, version=2)
    assert cap() == 7
    hold.release()
    first.join(30)

    acme.refresh_from_db()
    assert acme.seat_limit == 7 and cap() == 7
    assert acme.seat_limit_status == SeatLimitStatus.CONFIRMED


def test_organization_deleted_sends_nothing(acme, changes, fake_chargebee_for_sandbox):
    subscribe(3, version=1)
    sent = patches()
    organizations.delete(ORG)
    settle(acme.served)
    assert Organization.objects.get(pk=ORG).is_deleted
    assert patches() == sent and changes == [(3, None)]
    assert send_limit(ORG) == SeatLimitStatus.UNSET


@pytest.fixture
def fake_chargebee_for_sandbox(acme):
    """The sandbox's fake Chargebee knows Acme's customer, so organization.deleted can cancel its subscriptions."""
    runtime.chargebee().create_customer(CUSTOMER_ID)
    settle(acme.served)  # its customer_created webhook lands now, not in the middle of the test (SQLite's one writer)


# --- members -----------------------------------------------------------------------------------------------------


def test_members_and_pending_invites_are_counted_from_scalekits_list(acme):
    organizations.invite(ORG, "ivy@acme.test")
    runtime.directory().create_organization("Other", org_id="org_other")
    runtime.directory().join("org_other", "ada@acme.test", "ACTIVE")  # another organization's membership
    settle(acme.served)

    acme.refresh_from_db()
    assert (acme.seats_used, acme.seats_pending) == (2, 1)
    assert acme.seats_counted_at and acme.seats_stale_since is None
    assert WebhookDelivery.objects.get(event_type="user.organization_invitation").status == "processed"


def test_inline_recounts_at_most_once_per_interval_and_the_sync_counts_the_rest(acme):
    organizations.add_member(ORG, "zoe@acme.test")
    settle(acme.served)
    organizations.add_member(ORG, "yan@acme.test")  # within 10 s: only marked stale
    settle(acme.served)
    acme.refresh_from_db()
    assert acme.seats_used == 3 and acme.seats_stale_since is not None
    assert runtime.scalekit_faults().count("GET", f"/api/v1/organizations/{ORG}/users") == 1

    assert "counted 1" in sync("--since", "1h")
    acme.refresh_from_db()
    assert acme.seats_used == 4 and acme.seats_stale_since is None


def test_an_expired_invite_sends_no_event_and_the_full_sync_notices(acme):
    ivy = organizations.invite(ORG, "ivy@acme.test")
    settle(acme.served)
    organizations.expire_invite(ORG, ivy["id"])
    sync()
    acme.refresh_from_db()
    assert (acme.seats_used, acme.seats_pending) == (2, 0)


def test_the_fake_enforces_the_cap_as_scalekit_does(acme):
    subscribe(3, version=1)
    organizations.add_member(ORG, "zoe@acme.test")
    with pytest.raises(DirectoryError, match="reached its limit of 3"):
        organizations.invite(ORG, "ivy@acme.test")
    subscribe(4, version=2)
    organizations.invite(ORG, "ivy@acme.test")


def test_membership_events_for_unknown_or_deleted_organizations_are_ignored(acme, post_scalekit, settings):
    secret = settings.SCALEKIT_WEBHOOK_SECRET.split(",")[0]
    event = {
        "id": "evt_1",
        "type": "user.organization_membership_created",
        "data": {"organization": {"id": "org_unknown"}, "user": {"id": "usr_1"}},
    }
    response = post_scalekit(event, secret=secret)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    Organization.objects.filter(pk=ORG).update(deleted_at=timezone.now())
    event = dict(event, id="evt_2", data={"organization": {"id": ORG}})
    assert post_scalekit(event, secret=secret).json()["status"] == "ignored"
    assert "deleted" in WebhookDelivery.objects.get(event_id="evt_2").last_error

    for data in ({}, {"organization": {"id": ""}}, {"organization": "x"}, None):
        assert post_scalekit(dict(event, id="evt_3", data=data), secret=secret).status_code == 400
    assert not WebhookDelivery.objects.filter(event_id="evt_3").exists()


# --- the seat floor ----------------------------------------------------------------------------------------------


def test_a_decrease_below_members_and_invites_is_refused_before_chargebee(acme):
    subscribe(5, version=1)
    organizations.add_member(ORG, "zoe@acme.test")
    organizations.add_member(ORG, "yan@acme.test")
    organizations.invite(ORG, "ivy@acme.test")
    count_members(ORG)
    subscription = Subscription.objects.get(organization=acme)

    with pytest.raises(BillingProblem) as refused:
        check_seat_floor(subscription, 4)
    assert refused.value.status == 400
    assert refused.value.message == (
        "Acme Corp has 4 members and 1 pending invite; keep at least 5 seats or remove some."
    )
    check_seat_floor(subscription, 5)
    check_seat_floor(subscription, 9)  # increases are never refused


def test_with_no_count_a_decrease_counts_first_and_is_refused_when_scalekit_is_unreachable(acme):
    subscribe(5, version=1)
    subscription = Subscription.objects.get(organization=acme)
    runtime.scalekit_faults().fail_next(10, 503, path=f"/api/v1/organizations/{ORG}/users")
    with pytest.raises(BillingProblem, match="could not be checked"):
        check_seat_floor(subscription, 2)
    check_seat_floor(subscription, 6)  # an increase needs no count
    runtime.scalekit_faults().clear()

    check_seat_floor(subscription, 2)
    assert Organization.objects.get(pk=ORG).seats_used == 2
    with pytest.raises(BillingProblem, match="2 members and 0 pending invites; keep at least 2 seats"):
        check_seat_floor(subscription, 1)


def test_a_waiting_recount_claim_is_freed_after_the_interval(acme):
    organizations.add_member(ORG, "zoe@acme.test")
    settle(acme.served)
    Organization.objects.filter(pk=ORG).update(seats_recount_claimed_at=timezone.now() - timedelta(seconds=11))
    organizations.add_member(ORG, "yan@acme.test")
    settle(acme.served)
    assert Organization.objects.get(pk=ORG).seats_used == 4


def test_the_inline_recount_runs_after_the_webhook_is_answered(acme, settings):
    """Scalekit wants its 2xx within 10 s: the answer does not wait for the members list (held here)."""
    hold = runtime.scalekit_faults().hold_next(30, path=f"/api/v1/organizations/{ORG}/users")
    event = {"id": "evt_held", "type": "user.organization_invitation", "data": {"organization": {"id": ORG}}}
    body = json.dumps(event).encode()
    signed = scalekit_headers(body, secret=settings.SCALEKIT_WEBHOOK_SECRET.split(",")[0])
    headers = {name[5:].replace("_", "-").lower(): value for name, value in signed.items()}

    response = httpx.post(f"{acme.served}/api/webhooks/scalekit", content=body, headers=headers, timeout=5)

    assert response.status_code == 200 and response.json()["status"] == "processed"
    assert hold.reached.wait(20) and Organization.objects.get(pk=ORG).seats_used is None  # counting, answered
    hold.release()
    settle(acme.served)
    assert Organization.objects.get(pk=ORG).seats_used == 2
