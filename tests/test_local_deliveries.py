"""Events that call no vendor are recorded and applied in one transaction: the statements and commits they cost.

Inline, a Chargebee subscription event is one commit (the handler's three
statements, the delivery's insert); a failure is rolled back whole and then
recorded failed. In queue mode the webhook records and queues in one commit,
and the worker applies the event in ``db_worker``'s claim (the handler in a
savepoint, the outcome in the claim's commit), with no lease and no successor task.
Vendor-calling events keep the lease path (``test_leases.py``, ``test_queue.py``).
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from orgbilling import chargebee_events, tasks
from orgbilling.models import Organization, Subscription, WebhookDelivery
from tests import test_guarantees
from tests.chargebee_payloads import CUSTOMER_ID, ORG_ID, pc2_customer, pc2_event, pc2_subscription, post_event
from tests.test_queue import run_worker

# Transactional: the commits counted are real ones.
pytestmark = pytest.mark.django_db(transaction=True)

EVENT = pc2_event("subscription_changed", pc2_subscription(version=2, seats=5), event_id="ev_local_1")


@pytest.fixture(autouse=True)
def subscribed():
    # Its customer already seen (as on most events), so recording the customer's version costs no UPDATE.
    organization = Organization.objects.create(
        id=ORG_ID, chargebee_customer_id=CUSTOMER_ID, chargebee_customer_version=pc2_customer()["resource_version"]
    )
    Subscription.objects.create(
        id="sub_cb_1", organization=organization, chargebee_subscription_id="sub_cb_1", status="active", seats=3
    )


def statements(captured: CaptureQueriesContext) -> list[str]:
    """Each statement as its verb and the table it touches: ``SELECT orgbilling_subscription``.

    Django logs BEGIN and COMMIT beside the statements, so commits are counted too.
    """
    shapes = []
    for query in captured.captured_queries:
        sql = query["sql"]
        table = re.search(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"', sql)
        shapes.append(sql.split()[0].upper() + (f" {table.group(1)}" if table else ""))
    return shapes


# The deleted-organization scenario of issue 9's tests, as fixtures here too.
chargebee, paid_after_deletion = test_guarantees.chargebee, test_guarantees.paid_after_deletion

HANDLER = [
    "SELECT orgbilling_subscription",  # with its organization, both locked in one statement
    "UPDATE orgbilling_subscription",
    "SELECT orgbilling_subscription",  # the seat limit the subscriptions buy (issue 13)
    "UPDATE orgbilling_organization",  # ... which the event changed (3 seats to 5)
]


def test_inline_a_subscription_event_is_recorded_and_applied_in_one_commit(client):
    with CaptureQueriesContext(connection) as captured:
        response = post_event(client, EVENT)
    assert (response.status_code, response.json()["status"]) == (200, "processed")
    shapes = statements(captured)
    assert shapes[: shapes.index("COMMIT") + 1] == ["BEGIN", *HANDLER, "INSERT orgbilling_webhookdelivery", "COMMIT"]
    assert shapes.count("COMMIT") == 1  # after it, only the new seat limit's send (issue 13), outside any transaction
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.lease_token) == ("processed", 1, "")
    assert delivery.processed_at is not None and Subscription.objects.get().seats == 5


def test_inline_a_renewal_writes_its_subscription_and_delivery_in_one_statement_on_postgresql(client):
    """The event leaves the seats alone: the locked read, then the UPDATE and INSERT together (``holding_update``)."""
    assert post_event(client, EVENT).status_code == 200  # 5 seats: the cap follows
    renewed = pc2_event("subscription_renewed", pc2_subscription(version=3, seats=5), event_id="ev_local_renewed")
    with CaptureQueriesContext(connection) as captured:
        assert post_event(client, renewed).json()["status"] == "processed"
    shapes = statements(captured)
    writes = (
        ["WITH orgbilling_subscription"]
        if connection.vendor == "postgresql"
        else HANDLER[1:2] + ["INSERT orgbilling_webhookdelivery"]
    )
    assert shapes[: shapes.index("COMMIT") + 1] == ["BEGIN", HANDLER[0], *writes, "COMMIT"]
    assert WebhookDelivery.objects.get(event_id="ev_local_renewed").status == "processed"
    assert Subscription.objects.get().resource_version == pc2_subscription(version=3)["resource_version"]


def test_inline_a_failure_is_rolled_back_then_kept_failed_and_a_redelivery_heals_it(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(chargebee_events, "apply_subscription", broken)
    with CaptureQueriesContext(connection) as captured:
        response = post_event(client, EVENT)
    assert (response.status_code, response.json()["status"]) == (500, "failed")
    # Nothing of the attempt is committed; the failure is recorded on its own, for the vendor's retry.
    assert statements(captured) == ["BEGIN", "ROLLBACK", "INSERT orgbilling_webhookdelivery"]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == "RuntimeError: database went away"
    assert Subscription.objects.get().seats == 3
    monkeypatch.undo()

    # The redelivery finds the row recorded and takes the lease path: applied once, the row healed.
    assert post_event(client, EVENT).json() == {"eventId": "ev_local_1", "status": "processed", "duplicate": False}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("processed", 2, "")
    assert Subscription.objects.get().seats == 5
    assert post_event(client, EVENT).json()["duplicate"] is True


def test_inline_the_handlers_writes_are_undone_when_it_fails_after_making_them(client, monkeypatch):
    real = chargebee_events.apply_subscription

    def fails_after_writing(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("failed after the write")

    monkeypatch.setattr(chargebee_events, "apply_subscription", fails_after_writing)
    assert post_event(client, EVENT).status_code == 500
    assert WebhookDelivery.objects.get().status == "failed"
    assert Subscription.objects.get().seats == 3  # the rollback took the write back


def test_inline_strict_mode_keeps_the_lease_path(client, settings):
    settings.ORGBILLING_CHARGEBEE_STRICT_WEBHOOKS = True
    assert not chargebee_events.calls_no_vendor("subscription_changed")
    settings.ORGBILLING_CHARGEBEE_STRICT_WEBHOOKS = False
    assert chargebee_events.calls_no_vendor("subscription_changed")
    assert not chargebee_events.calls_no_vendor("customer_deleted")


def test_queue_mode_records_and_queues_in_one_commit_and_the_worker_applies_in_its_claim(client, settings):
    settings.ORGBILLING_PROCESSING = "queue"
    with CaptureQueriesContext(connection) as captured:
        response = post_event(client, EVENT)
    assert response.status_code == 202
    # The task (naming the delivery by its event), then the delivery: on PostgreSQL one statement, as a bare
    # insert is; elsewhere two in a transaction.
    together = [f"WITH {DBTaskResult._meta.db_table}"]
    apart = ["BEGIN", f"INSERT {DBTaskResult._meta.db_table}", "INSERT orgbilling_webhookdelivery", "COMMIT"]
    assert statements(captured) == (together if connection.vendor == "postgresql" else apart)

    with CaptureQueriesContext(connection) as captured:
        run_worker()
    ours = [shape for shape in statements(captured) if "orgbilling_" in shape or shape in ("SAVEPOINT", "RELEASE")]
    claim = ["SELECT orgbilling_webhookdelivery", "SAVEPOINT", *HANDLER, "RELEASE", "UPDATE orgbilling_webhookdelivery"]
    assert ours[: len(claim)] == claim  # after the task row's lock and update; then the seat limit's own task
    # No successor task: the delivery's only task is the one claimed (the other is the seat limit's send).
    assert DBTaskResult.objects.filter(task_path=tasks.process_delivery.module_path).count() == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.task_id, delivery.lease_token) == ("processed", 1, None, "")
    assert Subscription.objects.get().seats == 5
    claimed = DBTaskResult.objects.get(task_path=tasks.process_delivery.module_path)
    assert (claimed.status, claimed.return_value) == ("SUCCESSFUL", "processed")


def test_queue_mode_a_failure_in_the_claim_is_kept_with_one_retry_queued(client, settings, monkeypatch):
    settings.ORGBILLING_PROCESSING = "queue"
    settings.ORGBILLING_QUEUE_RETRY_BACKOFF = 3600  # the retry is not due within this test
    monkeypatch.setattr(chargebee_events, "apply_subscription", lambda *a, **k: 1 / 0)
    assert post_event(client, EVENT).status_code == 202
    run_worker()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == "ZeroDivisionError: division by zero"
    retry = DBTaskResult.objects.get(status="READY")
    assert (retry.id, retry.run_after) == (delivery.task_id, delivery.next_attempt_at)
    assert Subscription.objects.get().seats == 3


def test_queue_mode_a_subscription_of_a_deleted_organization_leaves_the_claim_for_the_lease_path(
    settings, chargebee, paid_after_deletion, monkeypatch
):
    """Applying it needs Chargebee (the refund cancel): the claim undoes it and the leased attempt makes the call."""
    settings.ORGBILLING_PROCESSING = "queue"
    in_transaction, cancel = [], chargebee_events.cancel_with_refund

    def watched(subscription_id: str):
        in_transaction.append(connection.in_atomic_block)
        return cancel(subscription_id)

    monkeypatch.setattr(chargebee_events, "cancel_with_refund", watched)
    created = [event for event in chargebee.events if event["event_type"] == "subscription_created"][-1]
    assert [response.status_code for response in chargebee.deliver(created)] == [202]
    run_worker()
    delivery = WebhookDelivery.objects.get(event_id=created["id"])
    assert (delivery.status, delivery.attempts, delivery.task_id) == ("processed", 1, None)
    assert in_transaction == [False]  # called outside the claim's transaction and its row locks
    [cancelled] = test_guarantees.refund_cancels(chargebee)
    assert cancelled.path == f"/subscriptions/{paid_after_deletion.subscription_id}/cancel_for_items"
    assert Subscription.objects.get(pk=paid_after_deletion.subscription_id).status == "cancelled"


def test_queue_mode_a_copy_recorded_meanwhile_takes_its_task_back_with_the_failed_insert():
    """The task is inserted first (naming the event); the copy's failed insert rolls it back with the transaction."""
    first = tasks.record_and_enqueue("chargebee", "ev_local_1", "subscription_changed", "{}")
    assert first is not None and first.task_id is not None
    assert tasks.record_and_enqueue("chargebee", "ev_local_1", "subscription_changed", "{}") is None
    [task] = DBTaskResult.objects.filter(task_path=tasks.process_delivery.module_path)
    assert (str(task.id), task.args_kwargs["args"]) == (str(first.task_id), ["chargebee", "ev_local_1"])


def test_a_newer_snapshot_writes_only_the_columns_it_changed(client):
    """The row is read under its lock, so the UPDATE names the changed columns only (the ORM builds less)."""
    assert post_event(client, EVENT).status_code == 200
    newer = pc2_event("subscription_changed", pc2_subscription(version=3, seats=7), event_id="ev_local_2")
    with CaptureQueriesContext(connection) as captured:
        assert post_event(client, newer).json()["status"] == "processed"
    [update] = [q["sql"] for q in captured.captured_queries if q["sql"].startswith('UPDATE "orgbilling_subscription"')]
    written = set(re.findall(r'"(\w+)" = ', update.split(" WHERE ")[0]))
    assert {"seats", "items", "resource_version", "updated_at"} <= written
    assert not written & {"status", "plan_id", "created_at", "reference_id", "chargebee_subscription_id"}
    row, version = Subscription.objects.get(), pc2_subscription(version=3)["resource_version"]
    assert (row.seats, row.status, row.resource_version) == (7, "active", version)
