"""Previewed changes (orgbilling.changes) against the fake Chargebee over real HTTP, every call counted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection  # noqa: F401  read by a skipif condition
from django.utils import timezone

from orgbilling import changes
from orgbilling.chargebee_gateway import get_gateway
from orgbilling.errors import BillingDenied, BillingProblem, NotFound, Throttled
from orgbilling.models import AuditEvent, BillingProfile, ChangePreview, Organization, Subscription
from orgbilling.subscription_sync import apply_subscription
from tests.billing_support import context_for
from tests.change_support import PLAN, PRO
from tests.worker_support import run_concurrently

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(change_fake):
    return change_fake


@pytest.fixture
def row(change_row):
    return change_row


def paths(fake) -> list[str]:
    return [call.path for call in fake.calls()]


def test_a_preview_costs_one_call_and_changes_nothing(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    assert paths(fake) == ["/estimates/update_subscription_for_items"]
    assert (preview.amount_due_now, preview.credits, preview.next_amount) == (1000, 0, 5000)
    assert preview.currency == "USD" and preview.increase and preview.effective_at is None
    assert preview.next_billing_at == row.current_period_end
    assert preview.lines == [
        {
            "description": PLAN,
            "quantity": 2,
            "amount": 1000,
            "dateFrom": int(fake.store.now()),
            "dateTo": fake.get_subscription("cb_sub_1")["current_term_end"],
        }
    ]
    assert Subscription.objects.get(pk=row.pk).seats == 3


def test_confirm_applies_exactly_the_previewed_parameters_in_one_call(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    fake.reset_calls()
    result = changes.confirm_change(context_for(), preview_id=preview.pk)
    [update] = fake.calls()
    assert update.path == "/subscriptions/cb_sub_1/update_for_items"
    assert update.headers["chargebee-idempotency-key"] == preview.request_key
    assert result.outcome == changes.Outcome.APPLIED and result.changed
    assert result.subscription.seats == 5  # shown at once, before any webhook
    assert result.message == "Done: Team with 5 seats; $10.00 was charged."
    # The renewal after the change, as the estimate said, stored for the version applied (no renewal_estimate call).
    assert result.subscription.renewal_amount == 5000 == preview.next_amount
    assert result.subscription.renewal_estimate_version == result.subscription.resource_version
    assert fake.store.find("invoice", [])[0]["amount_paid"] == preview.amount_due_now


def test_a_repeated_confirm_changes_once_and_makes_no_second_call(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    changes.confirm_change(context_for(), preview_id=preview.pk)
    fake.reset_calls()
    again = changes.confirm_change(context_for(), preview_id=preview.pk)
    assert again.outcome == changes.Outcome.APPLIED and fake.calls() == []
    assert len(fake.store.find("invoice", [])) == 1


def test_a_confirm_retried_after_a_lost_answer_sends_the_same_key(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    fake.fail_next(3, 503, path="/subscriptions/cb_sub_1/update_for_items")
    with pytest.raises(BillingProblem) as failed:
        changes.confirm_change(context_for(), preview_id=preview.pk)
    assert failed.value.status == 502
    assert ChangePreview.objects.get(pk=preview.pk).state == ChangePreview.State.APPLYING
    # One of those tries did reach Chargebee after all (its answer was lost): the change is made there.
    get_gateway().update_for_items("cb_sub_1", preview.params, idempotency_key=preview.request_key)
    result = changes.confirm_change(context_for(), preview_id=preview.pk)
    assert result.subscription.seats == 5
    updates = fake.calls(path="/subscriptions/cb_sub_1/update_for_items")
    assert {call.headers["chargebee-idempotency-key"] for call in updates} == {preview.request_key}
    assert len(fake.store.find("invoice", [])) == 1  # changed and charged once


def test_an_expired_preview_is_refused_with_a_fresh_one_and_charges_nothing(fake, row, monkeypatch):
    preview = changes.preview_change(context_for(), seats=5)
    ChangePreview.objects.filter(pk=preview.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    fake.reset_calls()
    with pytest.raises(changes.PreviewStale) as stale:
        changes.confirm_change(context_for(), preview_id=preview.pk)
    assert stale.value.status == 409 and "expired" in stale.value.message
    assert paths(fake) == ["/estimates/update_subscription_for_items"]  # the fresh preview, no change
    fresh = stale.value.fresh
    assert fresh.pk != preview.pk and fresh.seats == 5
    assert changes.confirm_change(context_for(), preview_id=fresh.pk).subscription.seats == 5


def test_a_preview_of_an_older_subscription_version_is_refused(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    fake.change_seats("cb_sub_1", 4)  # someone changed it in Chargebee's dashboard; its webhook arrives
    apply_subscription(fake.get_subscription("cb_sub_1"), fake.get_customer("org_1"))
    fake.reset_calls()
    with pytest.raises(changes.PreviewStale) as stale:
        changes.confirm_change(context_for(), preview_id=preview.pk)
    assert "changed" in stale.value.message
    assert paths(fake) == ["/estimates/update_subscription_for_items"]
    assert stale.value.fresh.amount_due_now == 500  # one more seat, half a term


def test_a_decrease_is_scheduled_for_the_term_end_and_can_be_undone(fake, row):
    preview = changes.preview_change(context_for(), seats=2)
    assert not preview.increase and preview.amount_due_now == 0 and preview.next_amount == 2000
    assert preview.effective_at == row.current_period_end
    assert preview.params == {"subscription_items": [{"item_price_id": PLAN, "quantity": 2}], "end_of_term": True}
    result = changes.confirm_change(context_for(), preview_id=preview.pk)
    assert result.outcome == changes.Outcome.SCHEDULED
    current = result.subscription
    assert current.seats == 3 and current.has_scheduled_changes
    assert current.scheduled_change == {
        "plan_id": PLAN,
        "plan_name": "Team",
        "seats": 2,
        "effective_at": row.current_period_end.isoformat(),
    }
    assert current.renewal_amount == 2000  # the renewal once the change takes effect
    fake.reset_calls()
    undone = changes.undo_scheduled_change(context_for())
    renewal = "/subscriptions/cb_sub_1/renewal_estimate"
    assert paths(fake) == ["/subscriptions/cb_sub_1/remove_scheduled_changes", renewal]
    assert not undone.has_scheduled_changes and undone.scheduled_change == {}
    with pytest.raises(BillingProblem) as nothing:
        changes.undo_scheduled_change(context_for())
    assert nothing.value.status == 409


def test_a_downgrade_to_a_cheaper_plan_waits_for_the_term_end(fake, row, settings):
    from orgbilling.models import ItemPrice

    for price_id, price in ((PLAN, 1000), (PRO, 3000)):
        ItemPrice.objects.update_or_create(  # conftest mirrors the default plan already
            id=price_id,
            defaults={"status": "active", "currency": "USD", "price": price, "pricing_model": "per_unit"}
            | {"period_unit": "month"},
        )
    Subscription.objects.filter(pk=row.pk).update(plan_id=PRO)
    row.refresh_from_db()
    assert not changes.is_increase(row, PLAN, 5)  # 5 x $10 < 3 x $30
    assert changes.is_increase(row, PRO, 4)


def test_a_card_that_is_not_valid_goes_to_the_hosted_page_in_one_call(fake, row):
    BillingProfile.objects.filter(organization_id="org_1").update(card_status="expired")
    preview = changes.preview_change(context_for(), seats=5)
    fake.reset_calls()
    result = changes.confirm_change(context_for(), preview_id=preview.pk)
    assert result.outcome == changes.Outcome.HOSTED and "/pages/v3/" in result.url
    assert paths(fake) == ["/hosted_pages/checkout_existing_for_items"]
    assert fake.calls()[0].params["subscription_items[quantity][0]"] == "5"


def test_a_payment_needing_3d_secure_goes_to_the_hosted_page_in_two_calls(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    fake.require_authentication_next_change()
    fake.reset_calls()
    result = changes.confirm_change(context_for(), preview_id=preview.pk)
    assert result.outcome == changes.Outcome.HOSTED
    assert paths(fake) == ["/subscriptions/cb_sub_1/update_for_items", "/hosted_pages/checkout_existing_for_items"]
    assert Subscription.objects.get(pk=row.pk).seats == 3


def test_a_decline_rereads_the_subscription_and_says_nothing_changed(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    fake.decline_next_change()
    fake.reset_calls()
    result = changes.confirm_change(context_for(), preview_id=preview.pk)
    assert paths(fake) == ["/subscriptions/cb_sub_1/update_for_items", "/subscriptions/cb_sub_1"]
    assert result.outcome == changes.Outcome.DECLINED and not result.changed
    assert result.message == "The payment was declined, so nothing was changed or charged."
    assert result.subscription.seats == 3
    with pytest.raises(BillingProblem) as used:  # the preview is spent: preview again
        changes.confirm_change(context_for(), preview_id=preview.pk)
    assert used.value.status == 409


def test_a_decline_that_keeps_the_change_says_an_invoice_is_unpaid(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    fake.decline_next_change(keep_change=True)
    result = changes.confirm_change(context_for(), preview_id=preview.pk)
    assert result.outcome == changes.Outcome.DECLINED and result.changed
    assert result.subscription.seats == 5 and result.subscription.due_invoices_count == 1
    assert result.message == "The payment was declined, but the change was made: an invoice of $10.00 is unpaid."


def test_the_seat_floor_applies_to_preview_and_confirm(fake, row, monkeypatch):
    monkeypatch.setattr("orgbilling.seat_counts.configured", lambda: True)
    Organization.objects.filter(pk="org_1").update(seats_used=3, seats_pending=0, seats_counted_at=timezone.now())
    with pytest.raises(BillingProblem, match="keep at least 3 seats"):
        changes.preview_change(context_for(), seats=2)
    Organization.objects.filter(pk="org_1").update(seats_used=1)
    preview = changes.preview_change(context_for(), seats=2)
    Organization.objects.filter(pk="org_1").update(seats_used=3)  # members joined since
    fake.reset_calls()
    with pytest.raises(BillingProblem, match="keep at least 3 seats"):
        changes.confirm_change(context_for(), preview_id=preview.pk)
    assert fake.calls() == []


def test_only_billing_managers_of_the_organization_and_the_previewer_may_confirm(fake, row):
    with pytest.raises(BillingDenied):
        changes.preview_change(context_for(roles=("member",)), seats=5)
    preview = changes.preview_change(context_for(), seats=5)
    other = context_for("org_2")
    with pytest.raises(NotFound):
        changes.confirm_change(other, preview_id=preview.pk)
    with pytest.raises(NotFound):
        changes.confirm_change(context_for(), preview_id="chp_nope")
    assert Subscription.objects.get(pk=row.pk).seats == 3


def test_bad_choices_are_400_without_calls(fake, row):
    for choice in ({"seats": 3}, {"seats": "x"}, {"seats": 0}, {"plan_id": "nope", "seats": 4}):
        with pytest.raises(BillingProblem) as refused:
            changes.preview_change(context_for(), **choice)
        assert refused.value.status == 400
    assert fake.calls() == []


def test_a_preview_counts_once_against_the_throttle_and_its_confirm_not_again(fake, row, settings):
    settings.ORGBILLING_THROTTLE_RATE = "1/day"
    preview = changes.preview_change(context_for(), seats=5)
    changes.confirm_change(context_for(), preview_id=preview.pk)
    with pytest.raises(Throttled):
        changes.preview_change(context_for(), seats=6)


def test_confirm_is_audited(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    changes.confirm_change(context_for(), preview_id=preview.pk)
    event = AuditEvent.objects.get(action="change")
    assert event.asked == {"preview_id": preview.pk}
    assert event.answer == {"outcome": "applied", "changed": True, "subscription_id": row.pk}


def test_a_snapshot_without_scheduled_changes_clears_the_noted_change(fake, row):
    """Removed in Chargebee's dashboard, or applied at the term's end: the webhook's snapshot says so."""
    changes.confirm_change(context_for(), preview_id=changes.preview_change(context_for(), seats=2).pk)
    fake.remove_scheduled_changes("cb_sub_1")
    apply_subscription(fake.get_subscription("cb_sub_1"), fake.get_customer("org_1"))
    current = Subscription.objects.get(pk=row.pk)
    assert not current.has_scheduled_changes and current.scheduled_change == {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrent writers need PostgreSQL")
def test_two_confirms_at_once_change_and_charge_once(fake, row):
    """A double click: both requests may call Chargebee, with the one key, and Chargebee changes once."""
    preview = changes.preview_change(context_for(), seats=5)
    fake.reset_calls()
    results = run_concurrently([lambda: changes.confirm_change(context_for(), preview_id=preview.pk)] * 2)
    assert [result.subscription.seats for result in results] == [5, 5]
    assert len(fake.store.find("invoice", [])) == 1
    keys = {call.headers["chargebee-idempotency-key"] for call in fake.calls()}
    assert keys == {preview.request_key}
    assert ChangePreview.objects.get(pk=preview.pk).state == ChangePreview.State.APPLIED


def test_a_refusal_rereads_the_subscription_and_says_nothing_changed(fake, row):
    preview = changes.preview_change(context_for(), seats=5)
    fake.fail_next(1, 400, path="/subscriptions/cb_sub_1/update_for_items")
    fake.reset_calls()
    result = changes.confirm_change(context_for(), preview_id=preview.pk)
    assert paths(fake) == ["/subscriptions/cb_sub_1/update_for_items", "/subscriptions/cb_sub_1"]
    assert result.outcome == changes.Outcome.REFUSED and not result.changed
    assert result.message.startswith("Chargebee refused the change, so nothing was changed")


def test_a_downgrade_to_another_plan_is_shown_with_its_name(fake, row, settings):
    from orgbilling.models import ItemPrice

    for price_id, price in ((PLAN, 1000), (PRO, 3000)):
        ItemPrice.objects.update_or_create(  # conftest mirrors the default plan already
            id=price_id,
            defaults={"status": "active", "currency": "USD", "price": price, "pricing_model": "per_unit"}
            | {"period_unit": "month"},
        )
    changes.confirm_change(context_for(), preview_id=changes.preview_change(context_for(), plan_id=PRO, seats=3).pk)
    fake.reset_calls()
    preview = changes.preview_change(context_for(), plan_id=PLAN, seats=3)  # back to Team: cheaper, at term end
    assert not preview.increase and preview.lines[0]["description"] == PLAN
    current = changes.confirm_change(context_for(), preview_id=preview.pk).subscription
    assert current.plan_id == PRO and current.scheduled_change["plan_name"] == "Team"
