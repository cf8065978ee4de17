"""Seat benchmarks (issue 13), run on PostgreSQL against the sandbox's fake Scalekit served over real HTTP.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orgbilling_bench \\
        .venv/bin/python -m pytest -q -s -p no:randomly bench/seat_bench.py

1. 50 membership events for one organization within one second, inline and in queue mode: member list passes
   made (goal <= 3) and whether the final count is exact (inline: after one ``orgbilling_sync --seats --since``).
2. 1,000 seat changes across 100 organizations with 20% of Scalekit's calls failing (the client's default two
   retries): once the queue drains, or after one ``orgbilling_sync --seats`` inline, every organization's cap in the
   fake must equal its stored wanted limit; PATCH calls per change are reported.

Results go to ``bench/SEATS.md``.
"""

from __future__ import annotations

import io
import json
import platform
import random
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from orgbilling.models import Organization, SeatLimitStatus
from orgbilling.subscription_sync import apply_subscription
from sandbox import runtime
from tests.chargebee_payloads import pc2_customer, pc2_subscription
from tests.conftest import _fresh_organization_memo, fresh_cache, scalekit_headers, vendor_settings  # noqa: F401
from tests.sandbox_support import served_app  # noqa: F401  (fixture)
from tests.test_queue import run_worker

pytestmark = pytest.mark.django_db(transaction=True)

RESULTS = Path(__file__).with_name("SEATS.md")
ORG = "org_90000000000000001"
_lines: list[str] = []


@pytest.fixture(params=["inline", "queue"])
def mode(request, settings, served_app):  # noqa: F811
    settings.ORGBILLING_PROCESSING = request.param
    settings.ORGBILLING_QUEUE_RETRY_BACKOFF = 0
    return request.param


def _post_membership_event(client: Client, secret: str, number: int) -> None:
    event = {
        "spec_version": "1",
        "id": f"evt_bench_{number}",
        "type": "user.organization_membership_created",
        "object": "OrgMembership",
        "organization_id": ORG,
        "data": {"organization": {"id": ORG}, "user": {"id": f"usr_bench_{number}"}},
    }
    body = json.dumps(event).encode()
    headers = scalekit_headers(body, secret=secret, msg_id=f"msg_bench_{number}")
    response = client.post("/api/webhooks/scalekit", body, content_type="application/json", **headers)
    assert response.status_code in (200, 202)


def test_fifty_membership_events_in_a_second(mode, settings):
    directory = runtime.directory()
    directory.create_organization("Bench", org_id=ORG)
    for number in range(10):
        directory.join(ORG, f"old{number}@bench.test", "ACTIVE")
    Organization.objects.create(id=ORG, display_name="Bench")
    client, secret = Client(), settings.SCALEKIT_WEBHOOK_SECRET.split(",")[0]

    with directory.store.transaction():  # the 50 changes in Scalekit, then their 50 webhooks as fast as they come
        for number in range(50):
            directory.join(ORG, f"new{number}@bench.test", "ACTIVE" if number % 5 else "PENDING_INVITE")
    started = time.perf_counter()
    for number in range(50):
        _post_membership_event(client, secret, number)
    elapsed = time.perf_counter() - started
    if mode == "queue":
        run_worker()
    else:
        call_command("orgbilling_sync", "--seats", "--since", "1h", stdout=io.StringIO(), stderr=io.StringIO())

    passes = runtime.scalekit_faults().count("GET", f"/api/v1/organizations/{ORG}/users")
    organization = Organization.objects.get(pk=ORG)
    exact = (organization.seats_used, organization.seats_pending) == (50, 10)
    after = "the queue drained" if mode == "queue" else "one orgbilling_sync --seats --since"
    _record(
        f"| 1. 50 membership events, {mode} | {elapsed:.2f} s to send | list passes after {after}: {passes} "
        f"(goal <= 3) | final count exact: {'yes' if exact else 'no'} |"
    )
    assert passes <= 3 and exact


def test_a_thousand_seat_changes_with_a_fifth_of_scalekit_calls_failing(mode, settings):
    directory, generator = runtime.directory(), random.Random(13)
    organizations = [f"org_9100000000000{number:04d}" for number in range(100)]
    with directory.store.transaction():
        for org_id in organizations:
            directory.create_organization(org_id, org_id=org_id)
    Organization.objects.bulk_create(
        Organization(id=org_id, chargebee_customer_id=f"cust_{org_id}") for org_id in organizations
    )
    runtime.scalekit_faults().fail_randomly(0.2, path="/api/v1/organizations/", seed=13)

    started = time.perf_counter()
    for change in range(1000):
        org_id = organizations[change % 100]
        subscription = pc2_subscription(
            f"sub_{org_id}", customer_id=f"cust_{org_id}", seats=generator.randint(1, 50), version=change // 100 + 1
        )
        apply_subscription(subscription, pc2_customer(f"cust_{org_id}"))
    live = Organization.objects.exclude(seat_limit_status=SeatLimitStatus.CONFIRMED).count()
    if mode == "queue":
        run_worker()
    else:
        call_command("orgbilling_sync", "--seats", stdout=io.StringIO(), stderr=io.StringIO())
    elapsed = time.perf_counter() - started

    stored = dict(Organization.objects.values_list("pk", "seat_limit"))
    wrong = [
        org_id for org_id in organizations if directory.organization(org_id).get("max_allowed_users") != stored[org_id]
    ]
    patches = runtime.scalekit_faults().count("PATCH", "/api/v1/organizations/")
    after = "the queue drained" if mode == "queue" else "one orgbilling_sync --seats"
    before = "queue ran" if mode == "queue" else "sync"
    _record(
        f"| 2. 1,000 seat changes, 100 organizations, 20% of calls failing, {mode} | {elapsed:.1f} s | "
        f"PATCH calls per change: {patches / 1000:.2f}; unconfirmed before the {before}: {live} | "
        f"caps equal to the stored limit after {after}: {100 - len(wrong)}/100 |"
    )
    assert not wrong


def _record(line: str) -> None:
    _lines.append(line)
    header = [
        "# Seat benchmarks (bench/seat_bench.py)",
        "",
        f"- {platform.machine()}, Python {platform.python_version()}, {connection.vendor} "
        f"{'.'.join(map(str, divmod(connection.pg_version, 10000))) if connection.vendor == 'postgresql' else ''}; "
        "the fake Scalekit served by a threaded WSGI server in the same process",
        "",
        "| Benchmark | Time | Measure | Result |",
        "|---|---|---|---|",
    ]
    RESULTS.write_text("\n".join([*header, *_lines]) + "\n")
