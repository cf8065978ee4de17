"""Issue 9 items 4 and 5 under real concurrency (PostgreSQL): parallel clicks, and gunicorn with two workers.

Item 4: twenty Subscribe clicks at once each get a hosted page, every page is
recorded (no lost update, no cap), and every return lands on
``/billing?success=1``. Item 5: twenty clicks spread over two gunicorn worker
processes let at most ten through, with the counter in a database row and in
Redis.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from django.db import connection, transaction
from django.test import Client

from orgbilling import provisioning, subscription_sync
from orgbilling.models import OpenedPage, Organization, Subscription
from sandbox.fake_chargebee import ChargebeeApiError
from tests.billing_support import page_id
from tests.chargebee_payloads import CUSTOMER_ID, PLAN, pc2_customer, pc2_subscription

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrency needs a shared PostgreSQL"),
]

ROOT = Path(__file__).resolve().parents[1]
CLICKS = 20
DEADLINE = 60


def in_parallel(task, count: int = CLICKS) -> list:
    """Run ``task(n)`` on ``count`` threads released together; each thread closes its database connection."""
    start = threading.Barrier(count)

    def run(number: int):
        try:
            start.wait(DEADLINE)
            return task(number)
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_item4_twenty_parallel_subscribe_clicks_are_all_recorded_and_every_return_succeeds(
    fake_chargebee, scalekit, settings
):
    settings.ORGBILLING_THROTTLE_RATE = ""  # this test is about recording pages, not the budget
    provisioning.ensure_customer("org_1", "Acme Corp")
    bearer = scalekit.bearer()

    def click(_: int) -> dict:
        response = Client().post("/api/subscription/create", {"seats": 2}, "application/json", **bearer)
        assert response.status_code == 200, response.content
        return response.json()

    opened = in_parallel(click)
    assert OpenedPage.objects.count() == CLICKS  # not one lost
    assert {page["subscriptionId"] for page in opened} == {Subscription.objects.get().pk}  # one row for all tabs
    for page in opened:  # each opened page paid in turn; Chargebee takes the first (one subscription id)
        try:
            fake_chargebee.complete_hosted_page(page_id(page["url"]))
        except ChargebeeApiError as refused:
            assert refused.api_error_code == "duplicate_entry"

    def come_back(number: int) -> str:
        page = opened[number]
        url = f"/api/subscription/success?subscriptionId={page['subscriptionId']}&id={page_id(page['url'])}"
        response = Client().get(url, **bearer)
        return response["Location"] if response.status_code == 302 else str(response.status_code)

    assert in_parallel(come_back) == ["/billing?success=1"] * CLICKS
    assert Subscription.objects.get().status == "in_trial"


def test_a_billing_lock_on_an_organization_lets_inserts_that_reference_it_through():
    """Billing locks (``locked()``) never block the foreign-key check of an insert: no lock cycle with one.

    Twenty parallel clicks once deadlocked this way: an opened page's insert
    waited for the organization lock another checkout held, which waited for it.
    """
    organization = Organization.objects.create(id="org_1", chargebee_customer_id="org_1")
    subscription = Subscription.objects.create(organization=organization, plan_id="team-plan-USD-monthly", seats=2)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                Organization.objects.locked().get(pk=organization.pk)
                Subscription.objects.locked().get(pk=subscription.pk)
                holding.set()
                release.wait(DEADLINE)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(DEADLINE)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '5s'")  # a blocked insert fails instead of waiting
            OpenedPage.objects.create(
                vendor_id="page_1", kind=OpenedPage.Kind.CHECKOUT, organization=organization, subscription=subscription
            )
    finally:
        release.set()
        holder.join(DEADLINE)
    assert OpenedPage.objects.filter(organization=organization, subscription=subscription).count() == 1


def test_a_subscription_event_locks_the_organization_before_the_subscription():
    """As every billing write does, the one read that locks both takes the organization first: no lock cycle.

    Locked the other way round, the event would hold the subscription while waiting for the organization,
    and a checkout holding the organization would deadlock on it.
    """
    organization = Organization.objects.create(id="org_1", chargebee_customer_id=CUSTOMER_ID)
    Subscription.objects.create(
        id="sub_cb_1", organization=organization, chargebee_subscription_id="sub_cb_1", plan_id=PLAN, seats=3
    )
    outcome: list = []

    def apply() -> None:
        try:
            outcome.append(subscription_sync.apply_subscription(pc2_subscription(seats=5), pc2_customer()).applied)
        except Exception as failure:  # noqa: BLE001 - reported below
            outcome.append(failure)
        finally:
            connection.close()

    applier = threading.Thread(target=apply)
    with transaction.atomic():
        Organization.objects.locked().get(pk=organization.pk)
        applier.start()
        waiting_for_a_lock(applier, outcome)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '5s'")  # waits for the event's lock fail instead
        Subscription.objects.locked().get(pk="sub_cb_1")
    applier.join(DEADLINE)
    assert outcome == [True] and Subscription.objects.get().seats == 5


def waiting_for_a_lock(thread: threading.Thread, outcome: list) -> None:
    """Until another connection of this test waits for a row lock (the ``thread``'s)."""
    deadline = time.monotonic() + DEADLINE
    with connection.cursor() as cursor:
        while thread.is_alive() and time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")  # live, unlike pg_stat_activity
            if cursor.fetchone()[0]:
                return
            thread.join(0.01)
    raise AssertionError(f"the other connection never waited for a lock: {outcome}")


def redis_available() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.real_time  # waits for gunicorn's workers to listen
@pytest.mark.parametrize("counter", ["database", "redis"])
def test_item5_twenty_parallel_clicks_against_two_gunicorn_workers_let_at_most_ten_through(served, counter):
    if counter == "redis" and not redis_available():
        pytest.skip("no Redis on 127.0.0.1:6379")
    # A day-long window: twenty clicks never straddle two windows, so "at most ten" is exact.
    redis_url = "redis://127.0.0.1:6379/0" if counter == "redis" else ""
    base = served(workers=2, ORGBILLING_THROTTLE_RATE="10/day", REDIS_URL=redis_url)
    organization_id = f"org_gu_{uuid.uuid4().hex[:12]}"  # fresh budget, also in a shared Redis
    token = served.stub.token(oid=organization_id)

    def click(_: int) -> int:
        request = Request(
            f"{base}/api/subscription/create",
            data=json.dumps({"seats": 2}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urlopen(request, timeout=DEADLINE) as response:
                return response.status
        except HTTPError as refused:
            return refused.code

    statuses = in_parallel(click)
    assert sorted(set(statuses)) <= [200, 429], statuses
    assert 1 <= statuses.count(200) <= 10, statuses
