"""Queue mode with real worker processes (PostgreSQL): shuffled and repeated deliveries, each applied once.

Two ``manage.py db_worker`` processes run against the test database while
four senders post renewals of several subscriptions out of order, some of
them twice. The guarantees under test are the delivery's lease and its one
queued task (a copy is never applied twice) and the ``resource_version`` guard (the newest snapshot
wins whatever order the workers pick the deliveries in).
"""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection
from django.test import Client
from django_tasks_db.models import DBTaskResult

from orgbilling.models import Organization, Subscription, WebhookDelivery
from tests.chargebee_payloads import post_event, renewal
from tests.worker_support import DEADLINE, start_worker, stop, wait_for, wait_started

pytestmark = [
    pytest.mark.real_time,  # waits on worker processes
    pytest.mark.django_db(transaction=True),
    pytest.mark.real_time,
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="worker processes need a shared PostgreSQL"),
]

SUBSCRIPTIONS, RENEWALS, WORKERS, SENDERS = 8, 12, 2, 4


def send(events: list[dict]) -> None:
    client = Client()
    try:
        for event in events:
            assert post_event(client, event).status_code in (200, 202)
    finally:
        connection.close()


def test_two_workers_apply_shuffled_and_repeated_deliveries_once(settings, tmp_path):
    settings.ORGBILLING_PROCESSING = "queue"
    for sub in range(SUBSCRIPTIONS):
        Organization.objects.create(id=f"org_q{sub}", chargebee_customer_id=f"cust_q{sub}")
    events = [renewal("q", sub, version) for sub in range(SUBSCRIPTIONS) for version in range(1, RENEWALS + 1)]
    rng = random.Random(6)
    deliveries = events + rng.sample(events, len(events) // 4)
    rng.shuffle(deliveries)

    logs = [tmp_path / f"worker{number}.log" for number in range(WORKERS)]
    workers = [start_worker(f"test-worker-{number}", log) for number, log in enumerate(logs)]
    try:
        wait_started(logs)
        senders = [threading.Thread(target=send, args=(deliveries[i::SENDERS],)) for i in range(SENDERS)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(DEADLINE)
        wait_for(
            lambda: (
                not DBTaskResult.objects.filter(status__in=["READY", "RUNNING"]).exists()
                and not WebhookDelivery.objects.filter(status="received").exists()
            ),
            "the queue to drain",
        )
    finally:
        stop(workers)

    assert WebhookDelivery.objects.count() == len(events)
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) <= {("processed", 1), ("ignored", 1)}
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert {tuple(ids) for ids in DBTaskResult.objects.values_list("worker_ids", flat=True)} == {
        (f"test-worker-{number}",) for number in range(WORKERS)
    }
    final = {row.id: (row.resource_version, row.current_period_end.timestamp()) for row in Subscription.objects.all()}
    newest = {f"sub_q{sub}": renewal("q", sub, RENEWALS)["content"]["subscription"] for sub in range(SUBSCRIPTIONS)}
    assert final == {sub_id: (s["resource_version"], s["current_term_end"]) for sub_id, s in newest.items()}
