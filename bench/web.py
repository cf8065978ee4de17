"""Benchmarks 1 and 2: a gated read and inline webhook ingest, each against a bare Django view.

Both sides go to the same gunicorn, one request at a time, in interleaved
chunks (``load.alternate``); the figure is the median latency.
"""

from __future__ import annotations

import json
import statistics
import time

from django.db import transaction

from orgbilling.chargebee_snapshot import SubscriptionSnapshot
from orgbilling.models import Organization, SeatLimitStatus, Subscription, WebhookDelivery
from sandbox.fake_chargebee import FakeChargebee
from tests.chargebee_payloads import MONTH, PLAN, START, pc2_customer, pc2_event, pc2_subscription
from tests.scalekit_support import ScalekitStub

from . import load
from .models import Row
from .report import Line

READ_GOAL, INGEST_GOAL = 1.25, 2.0
BASELINE_ROWS = 1000
WARM_UP_ROUNDS = 10
INGEST_WARM_UP = 20  # deliveries sent before the measured ones (not counted)


def _seed_rows() -> None:
    body = json.dumps({"id": "sub_bench", "status": "active", "planId": PLAN, "seats": 3})
    Row.objects.bulk_create(Row(key=f"row{i}", body=body) for i in range(BASELINE_ROWS))


def gated_read(port: int, stub: ScalekitStub, requests: int, workers: int) -> list[Line]:
    """GET /api/subscription with a valid Bearer token vs one row by indexed lookup."""
    organization = Organization.objects.create(id="org_bench_read", chargebee_customer_id="cust_bench_read")
    Subscription.objects.create(organization=organization, status="active", plan_id=PLAN, seats=3)
    _seed_rows()
    token = stub.token(oid=organization.id, exp=int(time.time()) + 3600)
    ours = [load.Request("GET", "/api/subscription", headers={"Authorization": f"Bearer {token}"})] * requests
    baseline = [load.Request("GET", f"/bench/rows/row{i % BASELINE_ROWS}") for i in range(requests)]

    # Warm-up, concurrent so every gunicorn worker fetches the JWKS and opens its database connection:
    # repeated (a few times at most) until each of the ``workers`` has fetched it.
    for _ in range(WARM_UP_ROUNDS):
        load.run(port, ours[:50], concurrency=8)
        load.run(port, baseline[:50], concurrency=8)
        if stub.jwks_hits >= workers:
            break
    fetches_before = stub.jwks_hits
    ours_results, base_results = load.alternate(port, load.at_depths(ours), load.at_depths(baseline))
    load.check_statuses(ours_results + base_results, {200}, "gated read")

    network = sum(result.connects for result in ours_results) / len(ours_results)
    name = f"1. Gated read ({requests} requests a side)"
    return [
        _latency(name, ours_results, base_results, READ_GOAL),
        Line(name, "SQL queries per request", _queries(ours_results), _queries(base_results)),
        Line(name, "outbound connections per request", network, "", "0", network == 0),
        Line(
            name,
            "JWKS fetches while measured",
            stub.jwks_hits - fetches_before,
            "",
            "0",
            stub.jwks_hits == fetches_before,
        ),
    ]


def _latency(name: str, ours: list[load.Result], baseline: list[load.Result], goal: float) -> Line:
    """The headline figure: median latencies, and whether their ratio meets the goal."""
    ours_ms, baseline_ms = load.median_ms(ours), load.median_ms(baseline)
    return Line(name, "median latency, ms", ours_ms, baseline_ms, f"ratio <= {goal}", ours_ms / baseline_ms <= goal)


def _queries(results: list[load.Result]) -> int:
    return int(statistics.median(result.queries for result in results))


def _seed_subscriptions(prefix: str, count: int, version: int = 1) -> None:
    """``count`` organizations, each with a linked subscription at ``version`` (3 seats), its customer seen and
    its seat cap confirmed in Scalekit: the steady state most events arrive in."""
    seen = pc2_customer()["resource_version"]
    mirrored = SubscriptionSnapshot.read(pc2_subscription(version=version))
    organizations = [
        Organization(
            id=f"org_{prefix}{i}",
            chargebee_customer_id=f"cust_{prefix}{i}",
            chargebee_customer_version=seen,
            seat_limit=3,
            seat_limit_status=SeatLimitStatus.CONFIRMED,
        )
        for i in range(count)
    ]
    with transaction.atomic():
        Organization.objects.bulk_create(organizations)
        Subscription.objects.bulk_create(
            Subscription(
                id=f"sub_{prefix}{i}",
                organization=organization,
                chargebee_customer_id=organization.chargebee_customer_id,
                chargebee_subscription_id=f"sub_{prefix}{i}",
                status="active",
                plan_id=PLAN,
                seats=3,
                items=mirrored.fields["items"],
                resource_version=mirrored.fields["resource_version"],
            )
            for i, organization in enumerate(organizations)
        )


def _changed(prefix: str, number: int) -> bytes:
    """A ``subscription_changed`` that needs no vendor call: a new term, the seats (so the seat cap) unchanged."""
    subscription = pc2_subscription(
        f"sub_{prefix}{number}", customer_id=f"cust_{prefix}{number}", version=2, current_term_end=START + 2 * MONTH
    )
    customer = pc2_customer(f"cust_{prefix}{number}")
    return json.dumps(
        pc2_event("subscription_changed", subscription, customer, event_id=f"ev_{prefix}{number}")
    ).encode()


def webhook_ingest(port: int, fake: FakeChargebee, count: int, auth: dict[str, str], *, queued: bool) -> list[Line]:
    """``subscription_changed`` for ``count`` distinct subscriptions vs a bare insert of the same bodies.

    Inline, each is processed before the answer (and checked applied here);
    queued, each is only recorded and enqueued (workers apply it later).
    """
    prefix = "ingq_" if queued else "ing_"
    _seed_subscriptions(prefix, count + INGEST_WARM_UP)
    bodies = [_changed(prefix, i) for i in range(count + INGEST_WARM_UP)]
    ours = [load.Request("POST", "/api/webhooks/chargebee", body, auth) for body in bodies]
    baseline = [load.Request("POST", "/bench/rows", body) for body in bodies]
    # Warm-up, concurrent so every gunicorn worker has loaded the webhook path (its imports, its connection).
    load.run(port, ours[:INGEST_WARM_UP], concurrency=4)
    load.run(port, baseline[:INGEST_WARM_UP], concurrency=4)
    ours, baseline = ours[INGEST_WARM_UP:], baseline[INGEST_WARM_UP:]
    calls_before = len(fake.calls())
    ours_results, base_results = load.alternate(port, load.at_depths(ours), load.at_depths(baseline))
    load.check_statuses(ours_results, {202 if queued else 200}, "webhook ingest")
    load.check_statuses(base_results, {200}, "webhook ingest baseline")

    recorded = WebhookDelivery.objects.filter(
        event_id__startswith=f"ev_{prefix}", status="received" if queued else "processed"
    )
    newer = pc2_subscription(version=2)["resource_version"]
    applied = Subscription.objects.filter(id__startswith=f"sub_{prefix}", resource_version=newer).count()
    total = count + INGEST_WARM_UP
    if recorded.count() != total or applied != (0 if queued else total):
        raise RuntimeError(f"webhook ingest: {recorded.count()} deliveries recorded, {applied} subscriptions changed")
    chargebee_calls = len(fake.calls()) - calls_before
    name = f"2. Webhook ingest, {'queue mode' if queued else 'inline'} ({count} subscriptions)"
    lines = [
        _latency(name, ours_results, base_results, INGEST_GOAL),
        Line(name, "SQL queries per request", _queries(ours_results), _queries(base_results)),
    ]
    if queued:
        return lines
    network = sum(result.connects for result in ours_results) / len(ours_results)
    return [
        *lines,
        Line(name, "Chargebee API calls", chargebee_calls, "", "0", chargebee_calls == 0),
        Line(name, "outbound connections per request", network, "", "0", network == 0),
    ]
