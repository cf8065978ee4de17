"""Issue 10, items 1-2: an attempt lost with its worker or its database connection is taken over by the lease.

Real ``manage.py db_worker`` processes on PostgreSQL run an ``organization.created``
delivery in queue mode while the fake Chargebee holds its customer creation
for a second, long enough to kill the worker (or cut its database connection)
mid-task. The delivery's successor task, queued when the attempt began and due
when its lease (2 s here) runs out, is picked up by whichever worker polls
next: the delivery ends processed once, and the fake made one customer.
"""

from __future__ import annotations

import signal
import time

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from orgbilling.models import Organization, WebhookDelivery
from tests.conftest import sample
from tests.worker_support import TcpProxy, database_url, start_worker, stop, wait_for, wait_started

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.real_time,
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="worker processes need a shared PostgreSQL"),
]

CREATED = sample("scalekit/webhooks/organization.created.json")
ORG_ID = CREATED["data"]["id"]
HOLD = 1.0  # seconds the fake holds each customer creation, then makes the customer anyway
LEASE = 2  # longer than the longest attempt the workers' gateway allows (one try, 1.5 s read timeout)


@pytest.fixture
def queue(settings, fake_chargebee, post_scalekit):
    settings.ORGBILLING_PROCESSING = "queue"
    worker_settings = {
        "CHARGEBEE_API_BASE_URL": settings.CHARGEBEE_API_BASE_URL,
        "CHARGEBEE_API_KEY": "test_key",
        "CHARGEBEE_SITE": "orgbilling-test",
        "CHARGEBEE_READ_TIMEOUT": 1.5,
        "CHARGEBEE_MAX_RETRIES": 0,
        "ORGBILLING_QUEUE_LEASE": LEASE,
        "ORGBILLING_QUEUE_RETRY_BACKOFF": 0,
    }
    return worker_settings


def customers_made(fake) -> int:
    return len(fake.store.find("customer", []))


def creations(fake) -> int:
    return len(fake.calls("POST", "/customers"))


def delivery() -> WebhookDelivery:
    return WebhookDelivery.objects.get()


def test_1_a_worker_killed_mid_task_is_followed_by_a_running_worker(queue, fake_chargebee, post_scalekit, tmp_path):
    fake_chargebee.fail_next(1, path="/customers", method="POST", timeout_seconds=HOLD)
    logs = [tmp_path / f"w{n}.log" for n in range(2)]
    workers = {f"w{n}": start_worker(f"w{n}", log, settings=queue) for n, log in enumerate(logs)}
    try:
        wait_started(logs)
        assert post_scalekit(CREATED).status_code == 202
        wait_for(lambda: creations(fake_chargebee) == 1, "the customer creation")
        killed = delivery().lease_owner
        workers[killed].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: delivery().status == "processed", "the delivery to be processed")
        taken_over_in = time.monotonic() - killed_at
    finally:
        stop(list(workers.values()))

    assert taken_over_in < LEASE + 2, taken_over_in  # the lease (backoff 0 here), a poll and the attempt

    done = delivery()
    assert (done.status, done.attempts, done.lease_until, done.task_id) == ("processed", 2, None, None)
    assert customers_made(fake_chargebee) == 1 and creations(fake_chargebee) == 2
    keys = {call.headers["chargebee-idempotency-key"] for call in fake_chargebee.calls("POST", "/customers")}
    assert keys == {Organization.objects.get(pk=ORG_ID).customer_request_key}  # the retry was answered, not re-run
    assert Organization.objects.get(pk=ORG_ID).chargebee_customer_id == ORG_ID
    # db_worker leaves the killed task RUNNING forever; the successor, run by the other worker, carried on.
    assert DBTaskResult.objects.running().get().worker_ids == [killed]
    assert [ids for ids in DBTaskResult.objects.successful().values_list("worker_ids", flat=True)] == [
        [name for name in workers if name != killed]
    ]
    assert not DBTaskResult.objects.filter(status="READY").exists()


def test_2_a_database_connection_dropped_mid_task_is_retried_by_the_lease(
    queue, fake_chargebee, post_scalekit, tmp_path
):
    settings_dict = connection.settings_dict
    proxy = TcpProxy((settings_dict["HOST"] or "127.0.0.1", int(settings_dict["PORT"] or 5432)))
    fake_chargebee.fail_next(1, path="/customers", method="POST", timeout_seconds=HOLD)
    log = tmp_path / "w.log"
    worker = start_worker("proxied", log, db_url=database_url(proxy.port), settings=queue)
    try:
        wait_started([log])
        assert post_scalekit(CREATED).status_code == 202
        wait_for(lambda: creations(fake_chargebee) == 1, "the customer creation")
        proxy.cut()  # mid-task: the customer is being made, nothing recorded yet
        wait_for(lambda: delivery().status == "processed", "the delivery to be processed")
        assert worker.poll() is None, log.read_text()  # the worker lived on, on a new connection
    finally:
        stop([worker])
        proxy.close()

    done = delivery()
    assert (done.status, done.attempts, done.task_id) == ("processed", 2, None)
    assert customers_made(fake_chargebee) == 1
    assert Organization.objects.get(pk=ORG_ID).chargebee_customer_id == ORG_ID
    # The cut task ended FAILED (the engine's view); the delivery went on in its successor.
    assert DBTaskResult.objects.failed().count() == 1 and DBTaskResult.objects.successful().count() == 1


def test_lost_attempts_spend_the_budget_and_end_failed_naming_the_lost_worker(
    queue, fake_chargebee, post_scalekit, tmp_path, settings
):
    settings.ORGBILLING_QUEUE_MAX_ATTEMPTS = 2
    queue["ORGBILLING_QUEUE_MAX_ATTEMPTS"] = 2
    fake_chargebee.fail_next(2, path="/customers", method="POST", timeout_seconds=HOLD)
    logs = [tmp_path / f"w{n}.log" for n in range(3)]
    workers = {f"w{n}": start_worker(f"w{n}", log, settings=queue) for n, log in enumerate(logs)}
    killed = []
    try:
        wait_started(logs)
        assert post_scalekit(CREATED).status_code == 202
        for attempt in (1, 2):
            wait_for(lambda attempt=attempt: creations(fake_chargebee) == attempt, f"creation {attempt}")
            killed.append(delivery().lease_owner)
            workers[killed[-1]].send_signal(signal.SIGKILL)
        wait_for(lambda: delivery().status == "failed" and delivery().task_id is None, "the budget to be spent")
    finally:
        stop(list(workers.values()))

    spent = delivery()
    assert len(set(killed)) == 2
    assert (spent.status, spent.attempts, spent.next_attempt_at, spent.lease_until) == ("failed", 2, None, None)
    assert spent.last_error.startswith(f"lost: attempt 2 by worker {killed[1]} ")
    assert creations(fake_chargebee) == 2 and not DBTaskResult.objects.filter(status="READY").exists()
