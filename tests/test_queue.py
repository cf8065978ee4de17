"""Queue mode (ORGBILLING_PROCESSING = "queue"): answer once recorded, process in a worker, retry with backoff.

The worker is django-tasks-db's own ``db_worker`` command run in this process
(``--batch``: until nothing is ready), so these run on SQLite and PostgreSQL
alike. Several worker processes on PostgreSQL: ``test_queue_workers.py``.
"""

from __future__ import annotations

import json
import signal
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from orgbilling import chargebee_events, deliveries, task_api, tasks
from orgbilling.checks import check_processing
from orgbilling.models import Organization, Subscription, WebhookDelivery
from tests.chargebee_payloads import CUSTOMER_ID, ORG_ID, pc2_event, pc2_subscription, post_event

# Transactional: the enqueue waits for a real commit, and the worker manages its own connection.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def queue_mode(settings):
    settings.ORGBILLING_PROCESSING = "queue"
    Organization.objects.create(id=ORG_ID, chargebee_customer_id=CUSTOMER_ID)


def run_worker() -> None:
    """The worker until nothing is ready; then pytest gets back the signal handlers the worker installs."""
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    try:
        call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", "--interval", "0", verbosity=0)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def changed(version: int = 1, event_id: str = "ev_changed_1") -> dict:
    return pc2_event("subscription_changed", pc2_subscription(version=version), event_id=event_id)


def flaky_handler(monkeypatch, failures: int) -> list[dict]:
    """Make Chargebee event handling fail ``failures`` times, then work; returns the events seen."""
    seen, real = [], chargebee_events.handle_event

    def handle(event: dict) -> None:
        seen.append(event)
        if len(seen) <= failures:
            raise RuntimeError(f"outage {len(seen)}")
        real(event)

    monkeypatch.setattr(chargebee_events, "handle_event", handle)
    return seen


def test_a_delivery_is_answered_once_recorded_and_applied_by_a_worker(client):
    response = post_event(client, changed())
    assert (response.status_code, response.json()) == (
        202,
        {"eventId": "ev_changed_1", "status": "queued", "duplicate": False},
    )
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("received", 0)
    assert not Subscription.objects.exists()
    assert DBTaskResult.objects.ready().count() == 1

    run_worker()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 1)
    assert Subscription.objects.get().chargebee_subscription_id == "sub_cb_1"
    # (Applying the subscription also queued the fetch of its next charge: renewal_tasks, tested on its own.)
    deliveries = DBTaskResult.objects.filter(task_path=tasks.process_delivery.module_path)
    assert list(deliveries.values_list("status", "return_value")) == [("SUCCESSFUL", "processed")]


def test_copies_are_applied_once_and_a_copy_of_a_done_delivery_is_not_queued(client):
    event = changed()
    assert [post_event(client, event).status_code for _ in range(3)] == [202, 202, 202]
    assert DBTaskResult.objects.count() == 1  # the copies found a task pending
    run_worker()
    successful = DBTaskResult.objects.successful().filter(task_path=tasks.process_delivery.module_path)
    assert successful.count() == 1  # and its successor went with the success
    assert WebhookDelivery.objects.get().attempts == 1

    response = post_event(client, event)
    assert (response.status_code, response.json()["status"], response.json()["duplicate"]) == (200, "processed", True)
    assert DBTaskResult.objects.filter(task_path=tasks.process_delivery.module_path).count() == 1


def test_shuffled_deliveries_end_at_the_newest_snapshot(client):
    for version in (3, 1, 5, 2, 4):
        post_event(client, changed(version, f"ev_v{version}"))
    run_worker()
    assert Subscription.objects.get().resource_version == pc2_subscription(version=5)["resource_version"]
    statuses = dict(WebhookDelivery.objects.values_list("event_id", "status"))
    assert statuses["ev_v5"] == "processed" and statuses["ev_v1"] == "ignored"


def delivery_tasks() -> list[tuple[str, str]]:
    rows = DBTaskResult.objects.filter(task_path=tasks.process_delivery.module_path)
    return sorted(rows.values_list("status", "return_value"))


def post_subscriptions(client, count: int) -> None:
    for number in reversed(range(count)):  # the claim's order is not the order of locking (see _lock_order)
        subscription = pc2_subscription(f"sub_cb_{number}")
        post_event(client, pc2_event("subscription_changed", subscription, event_id=f"ev_batch_{number}"))


def test_one_claim_applies_a_batch_with_one_commit(client, settings):
    settings.ORGBILLING_QUEUE_BATCH = 4
    post_subscriptions(client, 6)
    with CaptureQueriesContext(connection) as queries:
        run_worker()
    assert sorted(WebhookDelivery.objects.values_list("status", "attempts")) == [("processed", 1)] * 6
    assert Subscription.objects.count() == 6
    # Two claims (4 + 2); the peers' tasks went with their success, as a successor does, a statement a claim.
    assert delivery_tasks() == [("SUCCESSFUL", "processed")] * 2
    statements = [query["sql"].split(" WHERE")[0] for query in queries]
    assert statements.count('DELETE FROM "django_tasks_database_dbtaskresult"') == 2
    ours = [sql for sql in statements if "orgbilling_" in sql or sql.startswith("SAVEPOINT")]
    # One a claim for its batch (not one a delivery), and one where the first event makes the billing profile.
    assert [sql.split()[0] for sql in ours].count("SAVEPOINT") == 2 + 1
    assert sum(sql.startswith('UPDATE "orgbilling_webhookdelivery"') for sql in statements) == 2


@pytest.mark.parametrize("linger", [0.05, 0])
def test_a_worker_lingers_after_a_short_batch_only(client, settings, worker_waits, linger):
    """A steady stream is applied in batches too: after a claim that found less than a batch, the worker waits."""
    settings.ORGBILLING_QUEUE_BATCH = 4
    settings.ORGBILLING_QUEUE_LINGER = linger
    post_subscriptions(client, 6)
    run_worker()
    assert delivery_tasks() == [("SUCCESSFUL", "processed")] * 2  # 4, then 2
    assert worker_waits == ([linger] if linger else [])  # after the 2 only: a full batch means a backlog


def test_a_batch_records_each_outcome_of_its_successes(client, settings):
    settings.ORGBILLING_QUEUE_BATCH = 4
    post_subscriptions(client, 2)
    run_worker()
    post_event(client, changed(version=1, event_id="ev_stale"))  # an older copy of sub_cb_1: ignored
    post_event(client, pc2_event("subscription_changed", pc2_subscription("sub_cb_0", version=9), event_id="ev_new"))
    with CaptureQueriesContext(connection) as queries:
        run_worker()
    savepoints = [query for query in queries if query["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) == 1  # an ignored event is no failure: the batch stays in one savepoint
    rows = WebhookDelivery.objects.filter(event_id__in=["ev_stale", "ev_new"])
    columns = rows.values_list("event_id", "status", "last_error", "attempts")
    outcomes = {event_id: (status, bool(error), attempts) for event_id, status, error, attempts in columns}
    assert outcomes == {"ev_stale": ("ignored", True, 1), "ev_new": ("processed", False, 1)}
    assert not WebhookDelivery.objects.filter(task_id__isnull=False).exists()
    assert len(delivery_tasks()) == 2  # a claim a run: the second's two outcomes were recorded together


def test_a_batch_of_one_is_a_claim_per_delivery(client, settings):
    settings.ORGBILLING_QUEUE_BATCH = 1
    post_subscriptions(client, 3)
    run_worker()
    assert delivery_tasks() == [("SUCCESSFUL", "processed")] * 3


def test_a_batch_takes_peers_named_by_event_and_by_delivery_id_together(client, settings):
    """A webhook's task names its delivery by vendor and event id, a replay's by the delivery's id: one claim."""
    settings.ORGBILLING_QUEUE_BATCH = 10
    post_subscriptions(client, 2)
    for number in (2, 3):
        event = pc2_event("subscription_changed", pc2_subscription(f"sub_cb_{number}"), event_id=f"ev_id_{number}")
        recorded = WebhookDelivery.objects.create(
            vendor="chargebee", event_id=event["id"], event_type=event["event_type"], body=json.dumps(event)
        )
        assert tasks.enqueue(recorded.pk)
    named = DBTaskResult.objects.ready().filter(task_path=tasks.process_delivery.module_path)
    assert sorted(len(row.args_kwargs["args"]) for row in named) == [1, 1, 2, 2]
    run_worker()
    assert sorted(WebhookDelivery.objects.values_list("status", "attempts")) == [("processed", 1)] * 4
    assert delivery_tasks() == [("SUCCESSFUL", "processed")]  # one claim took all four
    assert Subscription.objects.count() == 4


def test_a_peer_that_fails_keeps_its_task_for_the_retry_and_the_batch_goes_on(client, settings, monkeypatch):
    settings.ORGBILLING_QUEUE_RETRY_BACKOFF = 30
    real = chargebee_events.handle_event

    def handle(event: dict) -> None:
        real(event)
        if event["id"] == "ev_batch_1":
            raise RuntimeError("outage after its writes")

    monkeypatch.setattr(chargebee_events, "handle_event", handle)
    post_subscriptions(client, 3)
    run_worker()
    statuses = dict(WebhookDelivery.objects.values_list("event_id", "status"))
    assert statuses == {"ev_batch_0": "processed", "ev_batch_1": "failed", "ev_batch_2": "processed"}
    # The batch was tried in one savepoint, undone, then applied each in its own: nothing of 1 stays.
    assert set(Subscription.objects.values_list("pk", flat=True)) == {"sub_cb_0", "sub_cb_2"}
    failed = WebhookDelivery.objects.get(event_id="ev_batch_1")
    retry = DBTaskResult.objects.get(status="READY")
    assert (str(failed.task_id), failed.attempts) == (str(retry.pk), 1)
    assert timedelta(seconds=29) < retry.run_after - timezone.now() <= timedelta(seconds=30)


def test_a_peer_needing_a_vendor_call_is_left_to_its_own_claim(client, monkeypatch):
    real, calls = chargebee_events.handle_event, []

    def handle(event: dict) -> None:
        calls.append((event["id"], deliveries.may_call_vendor()))
        if event["id"] == "ev_batch_0" and not deliveries.may_call_vendor():
            raise deliveries.NeedsVendorCall
        real(event)

    monkeypatch.setattr(chargebee_events, "handle_event", handle)
    post_subscriptions(client, 3)
    run_worker()
    assert sorted(WebhookDelivery.objects.values_list("status", "attempts")) == [("processed", 1)] * 3
    assert ("ev_batch_0", True) in calls  # with a lease, outside the claim
    assert sorted(status for status, _ in delivery_tasks()) == ["SUCCESSFUL", "SUCCESSFUL"]


def test_a_failure_is_retried_later_with_a_doubling_delay(client, settings, monkeypatch):
    settings.ORGBILLING_QUEUE_RETRY_BACKOFF = 30
    flaky_handler(monkeypatch, failures=5)
    post_event(client, changed())
    run_worker()  # the retry is not due yet, so the batch worker stops after one try

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "outage 1" in delivery.last_error
    retry = DBTaskResult.objects.get(status="READY")
    assert retry.run_after == delivery.next_attempt_at
    assert timedelta(seconds=29) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=30)

    # The due retry fails again: the next one waits twice as long.
    DBTaskResult.objects.filter(pk=retry.pk).update(run_after=timezone.now())
    run_worker()
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert timedelta(seconds=59) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=60)


def test_retries_heal_a_passing_outage(client, settings, monkeypatch):
    settings.ORGBILLING_QUEUE_RETRY_BACKOFF = 0
    flaky_handler(monkeypatch, failures=2)
    post_event(client, changed())
    run_worker()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("processed", 3, None)
    assert Subscription.objects.exists()


def test_after_the_last_attempt_the_delivery_stays_failed_for_replay(client, settings, monkeypatch):
    settings.ORGBILLING_QUEUE_RETRY_BACKOFF = 0
    settings.ORGBILLING_QUEUE_MAX_ATTEMPTS = 3
    seen = flaky_handler(monkeypatch, failures=10)
    post_event(client, changed())
    run_worker()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert len(seen) == 3 and not DBTaskResult.objects.ready().exists()

    monkeypatch.undo()
    call_command("orgbilling_replay", "--failed", stdout=None)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 4)


def test_a_task_is_queued_in_one_transaction_with_the_delivery_that_names_it():
    delivery = WebhookDelivery.objects.create(vendor="chargebee", event_id="ev_1", event_type="x", body="{}")
    with transaction.atomic():
        assert tasks.enqueue(delivery.pk)
        transaction.set_rollback(True)
    delivery.refresh_from_db()
    assert delivery.task_id is None and not DBTaskResult.objects.exists()  # neither without the other
    assert tasks.enqueue(delivery.pk) and not tasks.enqueue(delivery.pk)
    delivery.refresh_from_db()
    assert str(delivery.task_id) == str(DBTaskResult.objects.get().pk)


def test_a_new_event_is_recorded_with_its_task_and_a_copy_writes_neither():
    delivery = tasks.record_and_enqueue("chargebee", "ev_1", "subscription_changed", "{}")
    stored = WebhookDelivery.objects.get()
    assert (stored.pk, stored.event_id, stored.next_attempt_at) == (delivery.pk, "ev_1", delivery.next_attempt_at)
    assert DBTaskResult.objects.get(pk=stored.task_id).args_kwargs == {"args": ["chargebee", "ev_1"], "kwargs": {}}
    assert tasks.record_and_enqueue("chargebee", "ev_1", "subscription_changed", "{}") is None
    assert WebhookDelivery.objects.count() == DBTaskResult.objects.count() == 1  # the copy's task rolled back too


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="psycopg's prepared statements")
def test_where_statements_may_be_prepared_the_record_is_prepared_once(prepared_statements):
    before = prepared_statements("WITH row_0 AS%")
    assert all(tasks.record_and_enqueue("chargebee", f"ev_{n}", "subscription_changed", "{}") for n in range(2))
    assert prepared_statements("WITH row_0 AS%") == before + 1  # prepared by the first, reused by the second
    assert WebhookDelivery.objects.count() == DBTaskResult.objects.count() == 2


def test_the_task_recorded_with_a_delivery_is_the_row_the_backend_writes():
    at = timezone.now()
    ours = tasks._task_row(at, "chargebee", "ev_1")
    ours.save(force_insert=True)
    theirs = tasks.process_delivery.using(run_after=at).enqueue("chargebee", "ev_1")
    unequal = {"id", "enqueued_at"}
    compared = [field.attname for field in DBTaskResult._meta.concrete_fields if field.name not in unequal]
    rows = DBTaskResult.objects.filter(pk__in=[ours.pk, theirs.id]).values(*compared)
    assert len(rows) == 2 and rows[0] == rows[1]


def test_the_mode_and_the_backend_are_checked(settings):
    assert check_processing() == []
    settings.ORGBILLING_PROCESSING = "later"
    assert [m.id for m in check_processing()] == ["orgbilling.E011"]
    settings.ORGBILLING_PROCESSING = "queue"
    settings.TASKS = {"default": {"BACKEND": task_api.IMMEDIATE_BACKEND}}
    assert [m.id for m in check_processing()] == ["orgbilling.E012"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORGBILLING_QUEUE_LINGER", "0.05"),
        ("ORGBILLING_QUEUE_LINGER", -1),
        ("ORGBILLING_QUEUE_LINGER", float("nan")),
        ("ORGBILLING_QUEUE_BATCH", 0),
        ("ORGBILLING_QUEUE_BATCH", 2.5),
        ("ORGBILLING_QUEUE_MAX_ATTEMPTS", True),
        ("ORGBILLING_QUEUE_LEASE", 0),
        ("ORGBILLING_QUEUE_RETRY_BACKOFF", None),
    ],
)
def test_a_queue_number_out_of_its_range_is_refused_in_queue_mode_only(settings, name, value):
    setattr(settings, name, value)
    [problem] = check_processing()
    assert (problem.id, problem.msg) == ("orgbilling.E013", f"{name} is {value!r}.")
    settings.ORGBILLING_PROCESSING = "inline"  # not read then
    assert check_processing() == []


def test_the_queue_numbers_tests_set_are_accepted(settings):
    settings.ORGBILLING_QUEUE_RETRY_BACKOFF, settings.ORGBILLING_QUEUE_LINGER = 0, 0
    settings.ORGBILLING_QUEUE_LEASE, settings.ORGBILLING_QUEUE_BATCH = 2, 1
    assert check_processing() == []


class Clock:
    """The time every part of the queue reads (orgbilling, the worker's "is it due"), moved by hand."""

    def __init__(self) -> None:
        self.now = timezone.now()

    def __call__(self):
        return self.now


def test_3_redeliveries_of_a_failing_event_start_no_parallel_retry_chain(client, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    tried_at = []

    def failing(event: dict) -> None:
        tried_at.append(clock())
        raise RuntimeError("outage")

    monkeypatch.setattr(chargebee_events, "handle_event", failing)
    event = changed()
    post_event(client, event)
    for attempt in range(1, 9):
        run_worker()
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts) == ("failed", attempt)
        if attempt <= 3:  # Chargebee redelivers while the retry is pending: nothing is added
            before = (delivery.attempts, delivery.next_attempt_at, delivery.task_id)
            for _ in range(3):
                assert post_event(client, event).status_code == 202
            delivery.refresh_from_db()
            assert (delivery.attempts, delivery.next_attempt_at, delivery.task_id) == before
        if attempt < 8:
            [retry] = DBTaskResult.objects.filter(status="READY")  # one ready task, however many redeliveries
            assert retry.run_after == delivery.next_attempt_at and retry.pk == delivery.task_id
            clock.now = retry.run_after

    assert len(tried_at) == 8
    span = tried_at[-1] - tried_at[0]
    assert timedelta(minutes=60) < span < timedelta(minutes=65)  # 30 s doubled 7 times: 3810 s
    assert delivery.next_attempt_at is None and not DBTaskResult.objects.filter(status="READY").exists()

    # With no attempt pending, a redelivery gets exactly one, and its copies none.
    assert [post_event(client, event).status_code for _ in range(3)] == [202, 202, 202]
    assert DBTaskResult.objects.filter(status="READY").count() == 1
