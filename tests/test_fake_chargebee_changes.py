"""The fake Chargebee's previewed changes, through the real SDK and orgbilling's gateway.

Amounts depend on prorate / end_of_term / invoice_immediately and on the fake's clock, so a preview made
with other parameters than the change disagrees with what the change charges.
"""

from __future__ import annotations

import threading

import pytest

from orgbilling.chargebee_gateway import ChargebeeError, change_params, get_gateway
from sandbox import runtime
from sandbox.fake_chargebee_prices import item_price_object
from tests.change_support import DAY, PLAN, PRO
from tests.sandbox_support import sandbox  # noqa: F401  (fixture)


@pytest.fixture
def clock(chargebee_clock):
    return chargebee_clock


@pytest.fixture
def fake(change_fake):
    return change_fake


@pytest.fixture
def sub(fake, clock) -> dict:
    """An active subscription of 3 seats at $10 started April 1; the clock then moves to April 16 (half left)."""
    created = fake.create_subscription("cust_1", PLAN, 3, id="cb_sub_1")
    clock.now += 15 * DAY
    fake.reset_calls()
    return created


def test_an_increase_is_prorated_by_the_remaining_term_and_invoiced_now(fake, sub):
    params = change_params(item_price_id=PLAN, quantity=5, increase=True)
    estimate = get_gateway().estimate_update_for_items("cb_sub_1", params)
    charge = estimate["invoice_estimate"]
    assert charge["amount_due"] == 2 * 1000 // 2  # two more seats for half the term
    assert estimate["credit_note_estimates"] == []
    assert estimate["next_invoice_estimate"]["total"] == 5 * 1000
    assert estimate["subscription_estimate"]["next_billing_at"] == sub["next_billing_at"]
    assert fake.get_subscription("cb_sub_1")["subscription_items"][0]["quantity"] == 3  # a preview changes nothing

    changed = get_gateway().update_for_items("cb_sub_1", params, idempotency_key="key-1")
    assert changed["invoice"]["amount_paid"] == charge["amount_due"] and changed["invoice"]["status"] == "paid"
    assert changed["subscription"]["subscription_items"][0]["quantity"] == 5
    [preview, update] = fake.calls()
    assert (preview.path, update.path) == (
        "/estimates/update_subscription_for_items",
        "/subscriptions/cb_sub_1/update_for_items",
    )
    assert {k: v for k, v in preview.params.items() if k != "subscription[id]"} == update.params
    assert update.params["prorate"] == "true" and update.params["invoice_immediately"] == "true"


def test_a_preview_made_with_other_parameters_disagrees_with_the_charge(fake, sub):
    whole_term = {**change_params(item_price_id=PLAN, quantity=5, increase=True), "prorate": False}
    preview = get_gateway().estimate_update_for_items("cb_sub_1", whole_term)["invoice_estimate"]["amount_due"]
    changed = get_gateway().update_for_items(
        "cb_sub_1", change_params(item_price_id=PLAN, quantity=5, increase=True), idempotency_key="k"
    )
    assert (preview, changed["invoice"]["amount_paid"]) == (2000, 1000)


def test_the_day_of_the_change_sets_the_amount(fake, sub, clock):
    params = change_params(item_price_id=PLAN, quantity=4, increase=True)
    halfway = get_gateway().estimate_update_for_items("cb_sub_1", params)["invoice_estimate"]["amount_due"]
    clock.now += 12 * DAY  # 3 days of 30 left
    late = get_gateway().estimate_update_for_items("cb_sub_1", params)["invoice_estimate"]["amount_due"]
    assert (halfway, late) == (500, 100)


def test_an_upgrade_credits_the_unused_part_of_the_old_plan(fake, sub):
    estimate = get_gateway().estimate_update_for_items(
        "cb_sub_1", change_params(item_price_id=PRO, quantity=3, increase=True)
    )
    [credit] = estimate["credit_note_estimates"]
    assert credit["total"] == 3 * 1000 // 2
    assert estimate["invoice_estimate"]["amount_due"] == 3 * 3000 // 2 - 3 * 1000 // 2


def test_a_decrease_waits_for_the_term_end_and_can_be_undone(fake, sub):
    params = change_params(item_price_id=PLAN, quantity=2, increase=False)
    estimate = get_gateway().estimate_update_for_items("cb_sub_1", params)
    assert "invoice_estimate" not in estimate and estimate["credit_note_estimates"] == []
    assert estimate["next_invoice_estimate"]["total"] == 2000
    changed = get_gateway().update_for_items("cb_sub_1", params, idempotency_key="k")
    assert changed["subscription"]["has_scheduled_changes"] is True
    assert changed["subscription"]["subscription_items"][0]["quantity"] == 3  # still 3 until the term ends
    assert "invoice" not in changed
    undone = get_gateway().remove_scheduled_changes("cb_sub_1")
    assert undone["subscription"]["has_scheduled_changes"] is False
    assert fake.scheduled_change("cb_sub_1") is None


def test_a_scheduled_decrease_applies_at_renewal(fake, sub):
    get_gateway().update_for_items(
        "cb_sub_1", change_params(item_price_id=PLAN, quantity=2, increase=False), idempotency_key="k"
    )
    invoice = fake.renew_now("cb_sub_1")
    assert invoice["total"] == 2000
    assert fake.get_subscription("cb_sub_1")["has_scheduled_changes"] is False


def test_a_repeated_idempotency_key_changes_once(fake, sub):
    params = change_params(item_price_id=PLAN, quantity=5, increase=True)
    answers = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(get_gateway().update_for_items("cb_sub_1", params, idempotency_key="same"))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({answer["invoice"]["id"] for answer in answers}) == 1
    assert len(fake.store.find("invoice", [("subscription_id", "is", "cb_sub_1")])) == 1


def test_a_declined_change_changes_nothing(fake, sub):
    fake.decline_next_change()
    params = change_params(item_price_id=PLAN, quantity=5, increase=True)
    with pytest.raises(ChargebeeError) as declined:
        get_gateway().update_for_items("cb_sub_1", params, idempotency_key="k1")
    assert (declined.value.api_error_code, declined.value.cause) == (
        "payment_processing_failed",
        "gateway.general.decline",
    )
    assert fake.get_subscription("cb_sub_1")["subscription_items"][0]["quantity"] == 3
    # the knob is used up: the next try goes through
    assert get_gateway().update_for_items("cb_sub_1", params, idempotency_key="k2")["invoice"]["status"] == "paid"


def test_a_decline_may_keep_the_change_with_an_unpaid_invoice(fake, sub):
    fake.decline_next_change(keep_change=True)
    with pytest.raises(ChargebeeError):
        get_gateway().update_for_items(
            "cb_sub_1", change_params(item_price_id=PLAN, quantity=5, increase=True), idempotency_key="k"
        )
    after = fake.get_subscription("cb_sub_1")
    assert after["subscription_items"][0]["quantity"] == 5 and after["due_invoices_count"] == 1


def test_a_payment_needing_3d_secure_is_refused(fake, sub):
    fake.require_authentication_next_change()
    with pytest.raises(ChargebeeError) as refused:
        get_gateway().update_for_items(
            "cb_sub_1", change_params(item_price_id=PLAN, quantity=5, increase=True), idempotency_key="k"
        )
    assert refused.value.api_error_code == "payment_processing_failed"
    assert "authentication" in refused.value.cause
    assert fake.get_subscription("cb_sub_1")["subscription_items"][0]["quantity"] == 3


def test_a_decrease_charges_no_card_so_no_knob_is_used(fake, sub):
    fake.decline_next_change()
    get_gateway().update_for_items(
        "cb_sub_1", change_params(item_price_id=PLAN, quantity=2, increase=False), idempotency_key="k"
    )
    assert fake.get_subscription("cb_sub_1")["has_scheduled_changes"] is True


def test_end_of_term_with_invoice_immediately_is_refused(fake, sub):
    with pytest.raises(ChargebeeError) as refused:
        get_gateway().estimate_update_for_items(
            "cb_sub_1", {**change_params(item_price_id=PLAN, quantity=2, increase=False), "invoice_immediately": True}
        )
    assert refused.value.param == "invoice_immediately"


def test_amounts_follow_the_stored_item_price_tiers(fake, clock):
    tiers = [{"starting_unit": 1, "ending_unit": 3, "price": 1000}, {"starting_unit": 4, "price": 500}]
    fake.put_item_price(
        item_price_object(PLAN, item_id="team", external_name="Team", pricing_model="tiered", tiers=tiers)
    )
    fake.create_subscription("cust_1", PLAN, 3, id="cb_sub_1")  # 3 x $10 a month
    clock.now += 15 * DAY
    estimate = get_gateway().estimate_update_for_items(
        "cb_sub_1", change_params(item_price_id=PLAN, quantity=5, increase=True)
    )
    assert estimate["invoice_estimate"]["amount_due"] == (4000 - 3000) // 2  # seats 4 and 5 at $5, half a term
    assert estimate["next_invoice_estimate"]["total"] == 4000


@pytest.mark.django_db
def test_console_knobs_decline_ask_for_3d_secure_and_move_the_clock(client, sandbox):  # noqa: F811
    fake = runtime.chargebee()
    fake.create_subscription("org_1", sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 1, id="sub_1")
    page = client.get("/sandbox/").content.decode()
    assert "Decline the next change" in page and "Next change needs 3-D Secure" in page
    params = change_params(item_price_id=sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, quantity=2, increase=True)
    clock_before = fake.store.now()

    assert client.post("/sandbox/changes", {"advance": "1", "days": "15"}).status_code == 302
    assert fake.store.now() - clock_before >= 15 * DAY
    assert client.post("/sandbox/changes", {"advance": "1", "days": "-3"}).status_code == 302  # refused, unchanged
    assert fake.store.now() - clock_before < 16 * DAY

    client.post("/sandbox/changes", {"needs_3ds": "1"})
    with pytest.raises(Exception, match="3-D Secure"):
        fake.update_for_items("sub_1", [fake.item(sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 0, 2)], _options(params))
    client.post("/sandbox/changes", {"decline": "1"})
    with pytest.raises(Exception, match="declined"):
        fake.update_for_items("sub_1", [fake.item(sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 0, 2)], _options(params))
    assert fake.get_subscription("sub_1")["subscription_items"][0]["quantity"] == 1
    client.post("/sandbox/changes", {"decline_keep": "1"})
    with pytest.raises(Exception, match="declined"):
        fake.update_for_items("sub_1", [fake.item(sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 0, 2)], _options(params))
    assert fake.get_subscription("sub_1")["subscription_items"][0]["quantity"] == 2


def _options(params: dict) -> dict:
    return {name: params.get(name, False) for name in ("prorate", "end_of_term", "invoice_immediately")}


def test_the_renewal_estimate_counts_a_scheduled_change(fake, sub):
    get_gateway().update_for_items(
        "cb_sub_1", change_params(item_price_id=PLAN, quantity=2, increase=False), idempotency_key="k"
    )
    assert get_gateway().renewal_estimate("cb_sub_1")["invoice_estimate"]["amount_due"] == 2000
    get_gateway().remove_scheduled_changes("cb_sub_1")
    assert get_gateway().renewal_estimate("cb_sub_1")["invoice_estimate"]["amount_due"] == 3000
