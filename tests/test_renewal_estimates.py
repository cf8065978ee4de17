"""The next charge: Chargebee's renewal estimate, marked in the write, fetched after it, stored with its version."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from orgbilling import renewal_estimates
from orgbilling.chargebee_gateway import get_gateway
from orgbilling.models import Organization, Subscription
from orgbilling.renewal_estimates import InvalidEstimate, fetch_estimate, needs_estimate, read_amount
from orgbilling.subscription_sync import apply_subscription
from sandbox.fake_chargebee import ChargebeeApiError, FakeChargebee, serve
from tests.chargebee_payloads import pc2_event, post_event
from tests.conftest import sample
from tests.sandbox_support import sandbox  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

PLAN = "team-plan-USD-monthly"
PRICES = {PLAN: {"price": 1200, "item_type": "plan"}, "sso-addon": {"price": 500, "item_type": "addon"}}


@pytest.fixture
def fake(settings):
    """A fake Chargebee whose item prices are known, so estimates have amounts."""
    fake = FakeChargebee(item_prices=PRICES)
    server = serve(fake)
    settings.CHARGEBEE_API_BASE_URL = server.url
    yield fake
    fake.close()
    server.stop()


@pytest.fixture
def subscribed(fake):
    """org_1 with a 3-seat subscription in Chargebee, applied here (as its webhook would)."""
    Organization.objects.create(id="org_1", chargebee_customer_id="org_1")
    sub = fake.create_subscription("org_1", PLAN, 3, id="sub_1")
    apply_subscription(**fake.with_customer(sub))
    fake.reset_calls()
    return Subscription.objects.get(pk="sub_1")


def estimate_calls(fake) -> int:
    return len(fake.calls("GET", "/subscriptions/sub_1/renewal_estimate"))


# -- reading Chargebee's answer ------------------------------------------------------------


def test_the_vendor_sample_is_read():
    assert read_amount(sample("chargebee/estimates/renewal_estimate.apidocs.json")) == 900


@pytest.mark.parametrize(
    "estimate",
    [None, {}, {"invoice_estimate": []}, {"invoice_estimate": {"amount_due": "900"}}, {"invoice_estimate": {}}],
)
def test_an_unusable_answer_is_refused(estimate):
    with pytest.raises(InvalidEstimate):
        read_amount(estimate)


# -- marked in the write, fetched after it ---------------------------------------------------


def test_a_new_snapshot_marks_the_row_and_a_fetch_stores_the_figure_for_its_version(subscribed, fake):
    assert needs_estimate(subscribed) and subscribed.renewal_amount is None
    assert fetch_estimate("sub_1") == "stored"
    row = Subscription.objects.get(pk="sub_1")
    assert (row.renewal_amount, row.renewal_estimate_version) == (3600, row.resource_version)
    assert row.renewal_estimated_at is not None and row.next_billing_at == row.current_period_end
    assert not needs_estimate(row) and fetch_estimate("sub_1") == "not needed" and estimate_calls(fake) == 1
    # A seat change in Chargebee, applied here: the figure is kept, but marked as being updated.
    apply_subscription(**fake.with_customer(fake.change_seats("sub_1", 5)))
    row = Subscription.objects.get(pk="sub_1")
    assert row.renewal_amount == 3600 and renewal_estimates.is_stale(row)
    assert fetch_estimate("sub_1") == "stored"
    assert Subscription.objects.get(pk="sub_1").renewal_amount == 6000


def test_a_fetch_for_an_older_version_never_overwrites_a_newer_figure(subscribed, fake):
    """While one fetch waits on Chargebee, a change lands and its own fetch stores the newer figure first."""
    real = get_gateway()

    class Slow:
        def renewal_estimate(self, subscription_id: str) -> dict:
            answer = real.renewal_estimate(subscription_id)  # the 3-seat figure
            apply_subscription(**fake.with_customer(fake.change_seats("sub_1", 5)))
            assert fetch_estimate("sub_1") == "stored"  # the 5-seat figure, for the newer version
            return answer

    assert fetch_estimate("sub_1", Slow()) == "superseded"
    row = Subscription.objects.get(pk="sub_1")
    assert (row.renewal_amount, row.renewal_estimate_version) == (6000, row.resource_version)


def test_a_failed_fetch_keeps_the_old_figure_marked_stale(subscribed, fake):
    fetch_estimate("sub_1")
    apply_subscription(**fake.with_customer(fake.change_seats("sub_1", 5)))
    fake.fail_next(10, 503, path="/subscriptions/sub_1/renewal_estimate")
    assert fetch_estimate("sub_1") == "failed"
    row = Subscription.objects.get(pk="sub_1")
    assert row.renewal_amount == 3600 and renewal_estimates.is_stale(row)


def test_cancelled_and_non_renewing_subscriptions_need_no_estimate(subscribed, fake):
    apply_subscription(**fake.with_customer(fake.cancel_subscription("sub_1", end_of_term=True)))
    row = Subscription.objects.get(pk="sub_1")
    assert row.status == "non_renewing" and row.next_billing_at is None
    assert not needs_estimate(row) and fetch_estimate("sub_1") == "not needed" and estimate_calls(fake) == 0


def test_an_inline_webhook_calls_no_chargebee_and_the_sync_pass_fills_the_figure(client, subscribed, fake):
    sub = fake.change_seats("sub_1", 4)
    fake.reset_calls()
    assert post_event(client, pc2_event("subscription_changed", sub, fake.get_customer("org_1"))).status_code == 200
    assert fake.calls() == [] and needs_estimate(Subscription.objects.get(pk="sub_1"))
    call_command("orgbilling_sync", "--renewal-estimates")
    assert Subscription.objects.get(pk="sub_1").renewal_amount == 4800 and estimate_calls(fake) == 1
    call_command("orgbilling_sync", "--renewal-estimates")  # nothing missing or stale: no call
    assert estimate_calls(fake) == 1


def sweeps(*, ready: bool = True) -> list[DBTaskResult]:
    from orgbilling.renewal_tasks import fetch_renewal_estimates, go_on_fetching_renewal_estimates

    paths = [fetch_renewal_estimates.module_path, go_on_fetching_renewal_estimates.module_path]
    rows = DBTaskResult.objects.filter(task_path__in=paths)
    return list(rows.filter(status="READY") if ready else rows)


def more_subscriptions(fake, *ids: str) -> None:
    for subscription_id in ids:
        apply_subscription(**fake.with_customer(fake.create_subscription("org_1", PLAN, 3, id=subscription_id)))
    fake.reset_calls()


def test_queue_mode_asks_for_one_sweep_after_commits(subscribed, fake, settings, django_capture_on_commit_callbacks):
    from orgbilling.renewal_tasks import fetch_renewal_estimates

    settings.ORGBILLING_PROCESSING = "queue"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        apply_subscription(**fake.with_customer(fake.change_seats("sub_1", 2)))
        more_subscriptions(fake, "sub_2")
        assert not DBTaskResult.objects.exists()  # nothing before the commit
    assert sum(getattr(callback, "__name__", "") == "_queue_sweep" for callback in callbacks) == 2  # one a commit
    for callback in callbacks:
        callback()
    [sweep] = sweeps()  # the second commit found the first one's sweep waiting
    assert sweep.task_path == fetch_renewal_estimates.module_path and estimate_calls(fake) == 0
    assert fetch_renewal_estimates.call() == "stored 2"
    assert Subscription.objects.get(pk="sub_1").renewal_amount == 2400
    assert fetch_renewal_estimates.call() == "none needed"  # no call for figures already current
    assert estimate_calls(fake) == 1 and sweeps() == [sweep]  # and nothing to go on with


def test_a_sweep_yields_to_waiting_deliveries_and_goes_on_after_them(subscribed, fake, settings):
    from orgbilling.renewal_tasks import fetch_renewal_estimates, go_on_fetching_renewal_estimates
    from orgbilling.tasks import process_delivery

    settings.ORGBILLING_PROCESSING = "queue"
    more_subscriptions(fake, "sub_2", "sub_3")
    DBTaskResult.objects.all().delete()
    waiting = process_delivery.enqueue("chargebee", "ev_waiting")
    assert fetch_renewal_estimates.call() == "stored 1"
    [rest] = sweeps()
    assert (rest.task_path, rest.args_kwargs["args"]) == (go_on_fetching_renewal_estimates.module_path, ["sub_1"])
    DBTaskResult.objects.filter(pk=waiting.id).delete()  # a worker took the delivery
    assert go_on_fetching_renewal_estimates.call("sub_1") == "stored 2"
    assert len(fake.calls("GET")) == 3 and len(sweeps()) == 1  # nothing more to go on with


def test_a_sweep_takes_rows_a_batch_at_a_time(subscribed, fake, settings, monkeypatch):
    from orgbilling import renewal_tasks

    settings.ORGBILLING_PROCESSING = "queue"
    monkeypatch.setattr(renewal_tasks, "SWEEP_SIZE", 2)
    more_subscriptions(fake, "sub_2", "sub_3")
    DBTaskResult.objects.all().delete()
    assert renewal_tasks.fetch_renewal_estimates.call() == "stored 2"
    [rest] = sweeps()
    assert rest.args_kwargs["args"] == ["sub_2"]
    assert renewal_tasks.go_on_fetching_renewal_estimates.call("sub_2") == "stored 1"
    assert len(sweeps()) == 1 and not renewal_estimates.needing_estimates().exists()


def test_workers_take_waiting_deliveries_before_estimates(subscribed, fake, settings):
    """A burst of renewals is applied first; the estimates sweep waits below the deliveries."""
    from orgbilling.renewal_tasks import fetch_renewal_estimates
    from orgbilling.tasks import process_delivery

    settings.ORGBILLING_PROCESSING = "queue"
    fetch_renewal_estimates.enqueue()  # queued first
    process_delivery.enqueue("chargebee", "ev_later")
    assert DBTaskResult.objects.ready().get_locked().task_path == process_delivery.module_path


def test_queue_mode_leaves_a_failed_fetch_to_the_next_change_or_the_sync(subscribed, fake, settings):
    from orgbilling.renewal_tasks import fetch_renewal_estimates

    settings.ORGBILLING_PROCESSING = "queue"
    apply_subscription(**fake.with_customer(fake.change_seats("sub_1", 2)))
    DBTaskResult.objects.all().delete()
    fake.fail_next(10, 503, path="/subscriptions/sub_1/renewal_estimate")
    assert fetch_renewal_estimates.call() == "failed 1"
    assert not DBTaskResult.objects.exists()  # no retry holding up the queue
    tried = len(fake.calls("GET"))
    fake.clear_faults()
    assert fetch_renewal_estimates.call() == "none needed"  # a later sweep passes over it: no call per sweep
    assert len(fake.calls("GET")) == tried and needs_estimate(Subscription.objects.get(pk="sub_1"))
    call_command("orgbilling_sync", "--renewal-estimates")
    assert Subscription.objects.get(pk="sub_1").renewal_amount == 2400


def test_a_change_after_a_failed_fetch_asks_again(subscribed, fake, settings):
    from orgbilling.renewal_tasks import fetch_renewal_estimates

    settings.ORGBILLING_PROCESSING = "queue"
    apply_subscription(**fake.with_customer(fake.change_seats("sub_1", 2)))
    fake.fail_next(10, 503, path="/subscriptions/sub_1/renewal_estimate")
    assert fetch_renewal_estimates.call() == "failed 1"
    fake.clear_faults()
    apply_subscription(**fake.with_customer(fake.change_seats("sub_1", 4)))
    assert fetch_renewal_estimates.call() == "stored 1"
    assert Subscription.objects.get(pk="sub_1").renewal_amount == 4800


def test_a_task_queued_before_the_sweep_still_runs(subscribed, fake):
    from orgbilling.renewal_tasks import fetch_renewal_estimate

    Subscription.objects.filter(pk="sub_1").update(renewal_estimate_version=None)
    assert fetch_renewal_estimate.call("sub_1") == "stored"


# -- the fake's estimates and undoing a scheduled cancellation --------------------------------


def test_the_fake_estimates_the_items_for_the_next_term(fake):
    sub = fake.create_subscription("cust_1", PLAN, 3, id="sub_2")
    estimate = fake.renewal_estimate("sub_2")
    invoice = estimate["invoice_estimate"]
    assert (invoice["sub_total"], invoice["total"], invoice["amount_due"], invoice["currency_code"]) == (
        3600,
        3600,
        3600,
        "USD",
    )
    [line] = invoice["line_items"]
    assert (line["entity_id"], line["quantity"], line["unit_amount"]) == (PLAN, 3, 1200)
    assert line["date_from"] == sub["next_billing_at"] == estimate["subscription_estimate"]["next_billing_at"]
    fake.cancel_subscription("sub_2", end_of_term=True)
    assert fake.renewal_estimate("sub_2")["invoice_estimate"]["amount_due"] == 0  # renews nothing
    fake.cancel_subscription("sub_2", end_of_term=False)
    with pytest.raises(ChargebeeApiError) as refused:
        fake.renewal_estimate("sub_2")
    assert refused.value.api_error_code == "invalid_state_for_request"


def test_the_fake_removes_a_scheduled_cancellation_with_its_event(fake):
    events = []
    fake.on_event(events.append)
    fake.create_subscription("cust_1", PLAN, 3, id="sub_2")
    with pytest.raises(ChargebeeApiError):
        fake.remove_scheduled_cancellation("sub_2")  # nothing scheduled
    scheduled = fake.cancel_subscription("sub_2", end_of_term=True)
    assert (scheduled["status"], scheduled["cancelled_at"]) == ("non_renewing", scheduled["current_term_end"])
    kept = fake.remove_scheduled_cancellation("sub_2")
    assert kept["status"] == "active" and "cancelled_at" not in kept
    assert kept["next_billing_at"] == kept["current_term_end"]
    assert [event["event_type"] for event in events][-2:] == [
        "subscription_cancellation_scheduled",
        "subscription_scheduled_cancellation_removed",
    ]


def test_the_sandbox_console_runs_the_pass(client, sandbox, settings):  # noqa: F811
    page = client.get("/sandbox/").content.decode()
    assert 'action="/sandbox/next-charges"' in page
    response = client.post("/sandbox/next-charges", follow=True)
    assert "renewal estimates: stored 0, superseded 0, failed 0" in response.content.decode()
