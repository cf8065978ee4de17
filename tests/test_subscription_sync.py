"""apply_subscription: reading both catalog shapes, every matching step, the ordering guard, the signals."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from orgbilling import signals
from orgbilling.chargebee_snapshot import InvalidSnapshot, SubscriptionSnapshot
from orgbilling.models import Organization, Subscription
from orgbilling.provisioning import delete_organization
from orgbilling.subscription_sync import apply_subscription
from tests.chargebee_payloads import (
    CUSTOMER_ID,
    MONTH,
    ORG_ID,
    PLAN,
    START,
    SignalLog,
    pc2_customer,
    pc2_subscription,
    signal_log,
    vendor_event,
)

pytestmark = pytest.mark.django_db


sent = pytest.fixture(signal_log, name="sent")


@pytest.fixture
def org():
    return Organization.objects.create(id=ORG_ID, display_name="Acme", chargebee_customer_id=CUSTOMER_ID)


@pytest.fixture
def apply(django_capture_on_commit_callbacks):
    """apply_subscription, running the on-commit signals as a real commit would."""

    def run(subscription: dict, customer: dict | None = None, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return apply_subscription(subscription, customer, **kwargs)

    return run


def placeholder(org: Organization, row_id: str = "sub_local_1", **fields) -> Subscription:
    """The row checkout writes before Chargebee knows the subscription."""
    return Subscription.objects.create(id=row_id, organization=org, **fields)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# -- reading the snapshot ------------------------------------------------------------


def test_pc2_snapshot_is_stored_whole(org, apply):
    data = pc2_subscription(seats=7, addons=("sso-addon",), version=5)
    result = apply(data, pc2_customer())
    row = Subscription.objects.get()
    assert (result.applied, result.created, result.reason) == (True, True, "created")
    assert result.subscription == row
    assert (row.organization_id, row.chargebee_subscription_id, row.chargebee_customer_id) == (
        ORG_ID,
        "sub_cb_1",
        CUSTOMER_ID,
    )
    assert (row.status, row.plan_id, row.seats, row.resource_version) == ("active", PLAN, 7, START * 1000 + 5)
    assert row.items == [
        {"item_price_id": PLAN, "item_type": "plan", "quantity": 7, "unit_price": 1200},
        {"item_price_id": "sso-addon", "item_type": "addon", "quantity": 1, "unit_price": 500},
    ]
    assert (row.current_period_start, row.current_period_end) == (at(START), at(START + MONTH))
    assert row.current_period_start.tzinfo is not None
    assert (row.trial_start, row.trial_end, row.cancelled_at, row.cancel_at_period_end) == (None, None, None, False)


def test_pc1_vendor_sample_is_read():
    data = vendor_event("subscription_activated")["content"]["subscription"]
    fields = SubscriptionSnapshot.read(data).fields
    assert (fields["plan_id"], fields["seats"], fields["status"]) == ("basic", 1, "active")
    assert fields["items"] == [
        {"item_price_id": "basic", "item_type": "plan", "quantity": 1, "unit_price": 900},
        {"item_price_id": "data_usage", "item_type": "addon", "quantity": 1, "unit_price": 95},
    ]
    assert fields["next_billing_at"] == at(1347046824)
    assert (fields["trial_start"], fields["trial_end"]) == (at(1341690024), at(1344368424))
    assert (fields["current_period_start"], fields["current_period_end"]) == (at(1344368424), at(1347046824))
    assert fields["resource_version"] == 1344368425000


@pytest.mark.parametrize(
    ("status", "extra", "expected"),
    [
        ("non_renewing", {"cancelled_at": START + MONTH, "cancel_schedule_created_at": START + 5}, True),
        ("active", {"cancel_schedule_created_at": START + 5}, True),
        ("in_trial", {"cancelled_at": START + 14 * 86400}, True),
        ("cancelled", {"cancelled_at": START + 9}, False),
        ("active", {}, False),
    ],
)
def test_cancel_at_period_end_follows_the_scheduled_cancellation(status, extra, expected):
    fields = SubscriptionSnapshot.read(pc2_subscription(status=status, **extra)).fields
    assert fields["cancel_at_period_end"] is expected
    assert fields["cancelled_at"] == (at(extra["cancelled_at"]) if "cancelled_at" in extra else None)


@pytest.mark.parametrize(
    "data",
    [
        pc2_subscription(status="suspended"),
        pc2_subscription(id=None),
        pc2_subscription(subscription_id="x" * 51),
        pc2_subscription(customer_id=""),
        pc2_subscription(trial_end="tomorrow"),
        pc2_subscription(current_term_end=10**14),
        pc2_subscription(resource_version=True),
        pc2_subscription(subscription_items={"item_price_id": PLAN}),
        pc2_subscription(subscription_items=[{"item_type": "plan", "quantity": 1}]),
        {"id": "sub_1", "customer_id": CUSTOMER_ID, "status": "active", "plan_id": "basic", "addons": "data_usage"},
        ["not", "an", "object"],
    ],
)
def test_unreadable_snapshots_raise_and_write_nothing(org, data):
    with pytest.raises(InvalidSnapshot):
        apply_subscription(data)
    assert not Subscription.objects.exists()


# -- matching -------------------------------------------------------------------------


def test_step_1_the_local_id_sent_as_the_chargebee_id(org, apply):
    row = placeholder(org, "sub_local_1")
    placeholder(org, "sub_newer_placeholder")
    result = apply(pc2_subscription("sub_local_1"))
    assert result.subscription.pk == row.pk and not result.created
    row.refresh_from_db()
    assert (row.chargebee_subscription_id, row.status) == ("sub_local_1", "active")


def test_step_2_the_linked_chargebee_subscription_id(org, apply):
    row = placeholder(org, "sub_local_1", chargebee_subscription_id="cb_linked", resource_version=1)
    placeholder(org, "sub_other")
    assert apply(pc2_subscription("cb_linked")).subscription.pk == row.pk


@pytest.mark.parametrize(
    "meta_data",
    [
        {"subscriptionId": "sub_local_1"},
        {"subscriptionid": "sub_local_1"},  # lowercased by the SDK or another tool
        json.dumps({"SubscriptionId": "sub_local_1"}),  # stored as a JSON string
    ],
)
def test_step_3_meta_data_subscription_id_whatever_its_case_or_shape(org, apply, meta_data):
    row = placeholder(org, "sub_local_1")
    placeholder(org, "sub_newer_placeholder")  # what step 5 would pick
    customer = pc2_customer(meta_data={"pendingSubscriptionId": "sub_newer_placeholder"})  # what step 4 would pick
    result = apply(pc2_subscription("cb_generated", meta_data=meta_data), customer)
    assert result.subscription.pk == row.pk
    row.refresh_from_db()
    assert row.chargebee_subscription_id == "cb_generated"


def test_step_4_the_customers_pending_subscription_id(org, apply):
    row = placeholder(org, "sub_local_1")
    placeholder(org, "sub_newer_placeholder")
    customer = pc2_customer(meta_data=json.dumps({"organizationId": ORG_ID, "pendingsubscriptionid": "sub_local_1"}))
    assert apply(pc2_subscription("cb_generated"), customer).subscription.pk == row.pk


def test_step_5_the_organizations_unlinked_row_by_customer_mapping(org, apply):
    placeholder(org, "sub_older")
    newest = placeholder(org, "sub_newest")
    placeholder(org, "sub_linked", chargebee_subscription_id="cb_other", resource_version=1)
    assert apply(pc2_subscription("cb_generated")).subscription.pk == newest.pk


def test_step_5_finds_the_organization_through_customer_meta_data(apply):
    org = Organization.objects.create(id=ORG_ID)  # its customer id was never saved
    row = placeholder(org)
    customer = pc2_customer("cust_unsaved", meta_data={"organizationid": ORG_ID})
    result = apply(pc2_subscription("cb_1", customer_id="cust_unsaved"), customer)
    assert result.subscription.pk == row.pk
    assert Organization.objects.get().chargebee_customer_id is None  # matching does not remap customers


def test_meta_data_organization_id_is_not_trusted_over_another_customer_mapping(apply):
    Organization.objects.create(id=ORG_ID, chargebee_customer_id="cust_real")
    customer = pc2_customer("cust_impostor", meta_data={"organizationId": ORG_ID})
    result = apply(pc2_subscription("cb_1", customer_id="cust_impostor"), customer)
    assert (result.subscription, result.applied, result.reason) == (None, False, "unknown customer")
    assert not Subscription.objects.exists()


def test_a_row_linked_to_another_subscription_is_never_taken_over(org, apply):
    linked = placeholder(org, "sub_local_1", chargebee_subscription_id="cb_first", resource_version=1)
    customer = pc2_customer(meta_data={"pendingSubscriptionId": "sub_local_1"})  # stale pending id
    result = apply(pc2_subscription("cb_second", meta_data={"subscriptionId": "sub_local_1"}), customer)
    assert result.created and result.subscription.pk == "cb_second"
    linked.refresh_from_db()
    assert linked.chargebee_subscription_id == "cb_first"


def test_a_deleted_row_is_not_reused_through_the_customers_pending_id(org, apply):
    apply(pc2_subscription("sub_local_1", version=1))
    apply(pc2_subscription("sub_local_1", version=2, deleted=True))
    customer = pc2_customer(meta_data={"pendingSubscriptionId": "sub_local_1"})  # left over from that checkout
    result = apply(pc2_subscription("cb_next", version=1), customer)
    assert result.created and result.subscription.pk == "cb_next"
    tombstone = Subscription.objects.get(pk="sub_local_1")
    assert (tombstone.deleted_at is not None, tombstone.resource_version) == (True, START * 1000 + 2)


def test_a_row_of_another_organization_is_never_matched(org, apply):
    other = Organization.objects.create(id="org_other", chargebee_customer_id="cust_other")
    placeholder(other, "sub_of_other")
    result = apply(pc2_subscription("sub_of_other"))  # Chargebee id equal to another org's local id
    assert result.created and result.subscription.organization_id == ORG_ID
    assert result.subscription.pk != "sub_of_other"
    assert Subscription.objects.get(pk="sub_of_other").chargebee_subscription_id is None


def test_a_linked_row_is_found_through_its_chargebee_id_when_the_customer_is_unknown(org, apply, sent):
    row = placeholder(org, "sub_local_1", chargebee_subscription_id="cb_linked", resource_version=1, status="active")
    result = apply(pc2_subscription("cb_linked", customer_id="cust_unmapped", seats=7))
    assert (result.subscription.pk, result.reason) == (row.pk, "updated")
    assert Subscription.objects.get(pk=row.pk).seats == 7 and sent.names() == ["subscription_updated"]


def test_a_row_linked_in_another_organization_keeps_its_organization(org, apply, sent):
    other = Organization.objects.create(id="org_other", chargebee_customer_id="cust_other")
    row = placeholder(other, "sub_of_other", chargebee_subscription_id="cb_moved", resource_version=1, status="active")
    result = apply(pc2_subscription("cb_moved", seats=4))  # the customer is ORG_ID's
    assert (result.subscription.pk, result.subscription.organization_id) == (row.pk, "org_other")
    assert sent.names() == ["subscription_updated"]  # the receiver checks the organization it is given


def test_an_unknown_subscription_of_a_known_organization_gets_one_row(org, apply):
    first = apply(pc2_subscription("cb_dashboard", version=1))
    second = apply(pc2_subscription("cb_dashboard", version=2, seats=9))
    assert first.created and not second.created
    assert list(Subscription.objects.values_list("pk", "seats")) == [("cb_dashboard", 9)]


def test_an_unknown_customer_writes_nothing(apply, sent):
    result = apply(pc2_subscription(), pc2_customer())
    assert (result.subscription, result.applied, result.reason) == (None, False, "unknown customer")
    assert not Subscription.objects.exists() and sent == []


def test_created_while_the_checkout_row_waits_fills_that_row(org, apply):
    row = placeholder(org)
    apply(pc2_subscription("cb_1", status="future", version=1), event_type="subscription_created")
    apply(pc2_subscription("cb_1", status="active", version=2), event_type="subscription_activated")
    assert list(Subscription.objects.values_list("pk", "chargebee_subscription_id", "status")) == [
        (row.pk, "cb_1", "active")
    ]


# -- ordering ---------------------------------------------------------------------------


@pytest.mark.parametrize("seats", [2, 4])
def test_an_older_snapshot_is_stale_and_an_equal_identical_one_too(org, apply, sent, seats):
    apply(pc2_subscription(version=4, seats=4))
    sent.clear()
    older = seats == 2
    result = apply(pc2_subscription(version=3 if older else 4, seats=seats, status="paused" if older else "active"))
    row = Subscription.objects.get()
    assert (result.applied, result.reason, result.previous_status) == (False, "stale", "active")
    assert (row.seats, row.status, row.resource_version) == (4, "active", START * 1000 + 4)
    assert sent == []


def test_a_deleted_subscription_is_unlinked_and_late_events_stay_stale(org, apply, sent):
    apply(pc2_subscription(version=1, status="in_trial"))
    apply(pc2_subscription(version=3, status="in_trial"), event_type="subscription_deleted")  # no deleted flag
    row = Subscription.objects.get()
    assert (row.status, row.chargebee_subscription_id, row.deleted_at is not None) == ("cancelled", None, True)
    sent.clear()
    late = apply(pc2_subscription(version=2, status="active"))
    assert (late.applied, late.reason, late.subscription.pk) == (False, "stale", row.pk)
    assert Subscription.objects.count() == 1 and sent == []


# -- signals ----------------------------------------------------------------------------

TRANSITIONS = [
    ("in_trial", {}, "active", {}, ["subscription_complete", "trial_ended"]),
    ("future", {}, "active", {}, ["subscription_complete"]),
    ("future", {}, "in_trial", {}, ["trial_started"]),
    ("active", {}, "active", {"seats": 5}, ["subscription_updated"]),
    ("active", {}, "active", {"current_term_end": START + 2 * MONTH}, ["subscription_updated"]),
    ("active", {}, "active", {"billing_period": 2}, []),  # newer, but nothing orgbilling keeps changed
    ("active", {}, "non_renewing", {"cancelled_at": START + MONTH}, ["subscription_updated"]),
    ("non_renewing", {"cancelled_at": START + MONTH}, "active", {}, ["subscription_updated"]),
    ("active", {}, "paused", {}, ["subscription_updated"]),
    ("paused", {}, "active", {}, ["subscription_updated"]),
    ("active", {}, "cancelled", {"cancelled_at": START + 9}, ["subscription_cancelled"]),
    ("in_trial", {}, "cancelled", {}, ["subscription_cancelled", "trial_ended"]),
    ("cancelled", {}, "active", {}, ["subscription_updated"]),
    ("active", {}, "active", {"deleted": True}, ["subscription_cancelled", "subscription_deleted"]),
    ("cancelled", {}, "cancelled", {"deleted": True}, ["subscription_deleted"]),
]


@pytest.mark.parametrize(("before", "before_extra", "after", "after_extra", "expected"), TRANSITIONS)
def test_each_real_change_fires_its_signals_once(org, apply, sent, before, before_extra, after, after_extra, expected):
    apply(pc2_subscription(status=before, version=1, **before_extra))
    sent.clear()
    row = apply(pc2_subscription(status=after, version=2, **after_extra)).subscription
    assert sent == [(name, row.pk, before) for name in expected]


@pytest.mark.parametrize(
    ("status", "expected"),
    [("active", ["subscription_complete"]), ("in_trial", ["trial_started"]), ("future", []), ("cancelled", [])],
)
def test_the_first_snapshot_fires_like_a_new_subscription(org, apply, sent, status, expected):
    """Previous status None both for a new row and for the checkout row Chargebee never described."""
    placeholder(org)
    row = apply(pc2_subscription(status=status)).subscription
    apply(pc2_subscription("cb_dashboard", status=status))
    assert sent == [(name, row.pk, None) for name in expected] + [(name, "cb_dashboard", None) for name in expected]


def test_no_signal_when_the_transaction_rolls_back(org, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            apply_subscription(pc2_subscription())
            raise RuntimeError("the caller's later step failed")
    assert callbacks == [] and sent == []
    assert not Subscription.objects.exists()


def test_a_failing_receiver_is_logged_and_the_others_still_run(org, apply, sent, caplog):
    def broken(**kwargs):
        raise ValueError("receiver bug")

    signals.subscription_complete.connect(broken, weak=False, dispatch_uid="broken")
    try:
        with caplog.at_level(logging.ERROR, logger="orgbilling.subscription_sync"):
            result = apply(pc2_subscription())
    finally:
        signals.subscription_complete.disconnect(dispatch_uid="broken")
    assert result.applied and sent.names() == ["subscription_complete"]
    assert "signal receiver" in caplog.text


# -- the organization deletion goes through the same function --------------------------------


def test_delete_organization_applies_chargebee_snapshots_and_cancels_the_rest(
    fake_chargebee, apply, sent, django_capture_on_commit_callbacks
):
    events = []
    fake_chargebee.on_event(events.append)
    org = Organization.objects.create(id=ORG_ID, chargebee_customer_id=CUSTOMER_ID)
    apply(fake_chargebee.create_subscription(CUSTOMER_ID, PLAN, 2, id="cb_live"))
    checkout_row = placeholder(org, "sub_pending_checkout")
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert delete_organization(ORG_ID) == 1
    cancelled = events[-1]
    assert cancelled["event_type"] == "subscription_cancelled"
    live = Subscription.objects.get(pk="cb_live")
    assert (live.status, live.resource_version) == (
        "cancelled",
        cancelled["content"]["subscription"]["resource_version"],
    )
    checkout_row.refresh_from_db()
    assert checkout_row.status == "cancelled"
    assert Organization.objects.get().is_deleted
    # Only the live subscription was revoked: the checkout row never granted anything.
    assert sent == [("subscription_cancelled", "cb_live", "active")]
    # The webhook Chargebee sends for that cancellation is stale: no second signal.
    late = apply(
        cancelled["content"]["subscription"], cancelled["content"]["customer"], event_type="subscription_cancelled"
    )
    assert late.reason == "stale" and len(sent) == 1


# -- property: any delivery order ends in the newest state ---------------------------------------


def _history(subscription_id: str) -> list[tuple[str, dict]]:
    """A realistic life of one subscription, oldest first, as (event type, snapshot)."""
    trial = {"trial_start": START, "trial_end": START + 14 * 86400}
    steps = [
        ("subscription_created", {"status": "in_trial"}),
        ("subscription_changed", {"status": "in_trial", "seats": 5}),
        ("subscription_activated", {"status": "active", "seats": 5, **trial}),
        (
            "subscription_cancellation_scheduled",
            {"status": "non_renewing", "seats": 5, "cancelled_at": START + MONTH, "cancel_schedule_created_at": START},
        ),
        ("subscription_scheduled_cancellation_removed", {"status": "active", "seats": 5}),
        ("subscription_changed", {"status": "active", "seats": 8, "addons": ("sso-addon",)}),
        ("subscription_paused", {"status": "paused", "seats": 8}),
        ("subscription_resumed", {"status": "active", "seats": 8}),
        (
            "subscription_renewed",
            {
                "status": "active",
                "seats": 8,
                "current_term_start": START + MONTH,
                "current_term_end": START + 2 * MONTH,
            },
        ),
        ("subscription_cancelled", {"status": "cancelled", "seats": 8, "cancelled_at": START + 2 * MONTH}),
        ("subscription_reactivated", {"status": "active", "seats": 8}),
        ("subscription_deleted", {"status": "active", "seats": 8, "deleted": True}),
    ]
    return [
        (event_type, pc2_subscription(subscription_id, version=version, **fields))
        for version, (event_type, fields) in enumerate(steps, start=1)
    ]


HISTORY = _history("sub_local_1")


# The profile's count by default; under --fuzz the 100 this test always had (5,000 orderings add nothing).
@settings(max_examples=min(settings.default.max_examples, 100))
@given(data=st.data())
def test_any_delivery_order_ends_in_the_newest_state(org, apply, data):
    history = HISTORY[: data.draw(st.integers(1, len(HISTORY)), label="events so far")]
    redelivered = data.draw(st.lists(st.sampled_from(history), max_size=4), label="redelivered")
    deliveries = data.draw(st.permutations(history + redelivered), label="delivery order")
    with transaction.atomic(), SignalLog() as sent:
        placeholder(org, "sub_local_1")  # checkout sent the local id as the Chargebee id
        for event_type, snapshot in deliveries:
            fired_before = len(sent)
            if not apply(snapshot, event_type=event_type).applied:
                assert len(sent) == fired_before  # stale and duplicate snapshots fire nothing
        row = Subscription.objects.get()  # never a second row
        newest_type, newest = history[-1]
        expected = SubscriptionSnapshot.read(newest, deleted=newest_type == "subscription_deleted").fields
        assert {name: getattr(row, name) for name in expected} == expected
        assert (row.deleted_at is not None) == (newest_type == "subscription_deleted")
        assert sent.names().count("subscription_complete") <= 1
        assert sent.names().count("trial_started") <= 1
        transaction.set_rollback(True)
