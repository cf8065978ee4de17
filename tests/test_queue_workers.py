"""Queue mode with real worker processes (PostgreSQL): shuffled and repeated deliveries, each applied once.

Two ``manage.py db_worker`` processes run against the test database while
four senders post renewals of several subscriptions out of order, some of
them twice. The guarantees under test are the delivery row lock (a copy is
never applied twice) and the ``resource_version`` guard (the newest snapshot
wins whatever order the workers pick the deliveries in).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import Client
from django_tasks_db.models import DBTaskResult

from orgbilling.models import Organization, Subscription, WebhookDelivery
from tests.chargebee_payloads import post_event, renewal

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="worker processes need a shared PostgreSQL"),
]

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIPTIONS, RENEWALS, WORKERS, SENDERS = 8, 12, 2, 4
DEADLINE = 120  # seconds for anything to happen; the run takes a few


def database_url() -> str:
    """The test database (not the developer's) as a DATABASE_URL for the worker processes."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"
    return f"postgres://{quote(db['USER'], safe='')}{password}@{host}/{db['NAME']}"


def start_worker(number: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url(), "SANDBOX": "false"}
    command = [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.05"]
    return subprocess.Popen(
        [*command, "--worker-id", f"test-worker-{number}"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


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
    workers = [start_worker(number, log) for number, log in enumerate(logs)]
    try:
        wait_for(lambda: all("Starting worker" in log.read_text() for log in logs), "the workers to start")
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
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(DEADLINE)

    assert WebhookDelivery.objects.count() == len(events)
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) <= {("processed", 1), ("ignored", 1)}
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert {tuple(ids) for ids in DBTaskResult.objects.values_list("worker_ids", flat=True)} == {
        (f"test-worker-{number}",) for number in range(WORKERS)
    }
    final = {row.id: (row.resource_version, row.current_period_end.timestamp()) for row in Subscription.objects.all()}
    newest = {f"sub_q{sub}": renewal("q", sub, RENEWALS)["content"]["subscription"] for sub in range(SUBSCRIPTIONS)}
    assert final == {sub_id: (s["resource_version"], s["current_term_end"]) for sub_id, s in newest.items()}
