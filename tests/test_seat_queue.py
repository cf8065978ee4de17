"""Queue mode's seat tasks over real HTTP against the fake Scalekit: one coalesced recount per organization,
and a seat limit whose send fails retried by the queue until Scalekit confirms it."""

from __future__ import annotations

import pytest
from django_tasks_db.models import DBTaskResult

from orgbilling.models import Organization, SeatLimitStatus, WebhookDelivery
from sandbox import organizations, runtime
from tests.sandbox_support import served_app  # noqa: F401  (fixture)
from tests.test_queue import run_worker
from tests.test_seats import ORG, SETTINGS_PATH, acme, cap, patches, subscribe  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def queue_mode(settings):
    settings.ORGBILLING_PROCESSING = "queue"
    settings.ORGBILLING_QUEUE_RETRY_BACKOFF = 0  # retries are due at once: the worker's batch runs them


def tasks_named(name: str) -> int:
    return DBTaskResult.objects.filter(task_path=f"orgbilling.seat_tasks.{name}").count()


def test_many_membership_events_make_one_recount_with_an_exact_count(acme):  # noqa: F811
    for number in range(8):
        organizations.add_member(ORG, f"user{number}@acme.test")
    assert runtime.sender().wait_idle(20)
    assert WebhookDelivery.objects.filter(status="received").count() == 8

    run_worker()

    assert tasks_named("recount_seats") == 1
    assert runtime.scalekit_faults().count("GET", f"/api/v1/organizations/{ORG}/users") == 1
    organization = Organization.objects.get(pk=ORG)
    assert (organization.seats_used, organization.seats_pending) == (10, 0)
    assert organization.seats_stale_since is None and organization.seats_recount_claimed_at is None


def test_a_failing_send_is_retried_by_the_queue_until_scalekit_confirms(acme):  # noqa: F811
    runtime.scalekit_faults().fail_next(4, 503, path=SETTINGS_PATH)  # the first task's three tries, and one more
    subscribe(3, version=1)
    assert Organization.objects.get(pk=ORG).seat_limit_status == SeatLimitStatus.PENDING

    run_worker()

    assert tasks_named("send_seat_limit") == 2
    assert cap() == 3 and patches() == 5
    assert Organization.objects.get(pk=ORG).seat_limit_status == SeatLimitStatus.CONFIRMED
