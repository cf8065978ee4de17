"""Benchmark 3: a burst of renewals from concurrent senders, in queue mode with task workers.

Renewals arrive roughly in order, as Chargebee sends them, but reordered
within a window and with some sent twice. The baseline is the same requests
to a bare insert view: how long it takes just to accept them. The queue run
then counts what a billing system must never do: lose a delivery or apply
one twice, and compares the table with the one expected.
"""

from __future__ import annotations

import json
import os
import random
import time

from django_tasks_db.models import DBTaskResult

from orgbilling.models import Subscription, WebhookDelivery
from sandbox.fake_chargebee import FakeChargebee
from tests.chargebee_payloads import PLAN, renewal

from . import cpu, load, web
from .report import Line

SENDERS = 16
RENEWALS_PER_SUBSCRIPTION = 10
DUPLICATES = 0.05  # share of deliveries sent a second time
REORDER_WINDOW = 200  # deliveries shuffled within windows of this many
# Twice the best rate recorded before issue 18 (105-141 a second on a quiet 2-CPU machine).
DRAIN_GOAL = 2 * 141
# The same goal against the machine's own speed: that 141 a second took 8.81 times as long as the bare inserts of the
# same run (a2e372b). A shared machine's speed varies several-fold from day to day; this ratio varies much less.
DRAIN_RATIO_GOAL = 8.81 / 2
DRAIN_SECONDS = 900  # the most the workers are given; a slower drain fails the run


def _deliveries(subscriptions: int, rng: random.Random) -> list[bytes]:
    """Every renewal of every subscription, in time order, then reordered locally and partly repeated."""
    events = [
        json.dumps(renewal("burst_", sub, version)).encode()
        for version in range(1, RENEWALS_PER_SUBSCRIPTION + 1)
        for sub in range(subscriptions)
    ]
    for start in range(0, len(events), REORDER_WINDOW):
        window = events[start : start + REORDER_WINDOW]
        rng.shuffle(window)
        events[start : start + REORDER_WINDOW] = window
    for body in rng.sample(events, int(len(events) * DUPLICATES)):
        events.insert(rng.randrange(len(events) + 1), body)
    return events


def _applied() -> bool:
    return not WebhookDelivery.objects.filter(status__in=["received", "failed"]).exists()


def wait_for_drain() -> float:
    """Until every delivery is processed or ignored and no task is left; bounded by ``DRAIN_SECONDS``.

    Returns when (``time.perf_counter()``) the last delivery was applied: the follow-up tasks (next-charge
    estimates, queued below the deliveries) may run on after it.
    """
    deadline = time.monotonic() + DRAIN_SECONDS
    applied_at = None
    while True:
        if applied_at is None and _applied():
            applied_at = time.perf_counter()
        if applied_at is not None and not DBTaskResult.objects.filter(status__in=["READY", "RUNNING"]).exists():
            return applied_at
        if time.monotonic() > deadline:
            raise RuntimeError(f"the queue did not drain in {DRAIN_SECONDS} s")
        time.sleep(0.1)


def _expected_table(subscriptions: int) -> dict[str, tuple[int, float]]:
    newest = (
        renewal("burst_", sub, RENEWALS_PER_SUBSCRIPTION)["content"]["subscription"] for sub in range(subscriptions)
    )
    return {s["id"]: (s["resource_version"], float(s["current_term_end"])) for s in newest}


def _cpu_lines(name: str, ours: dict[str, float], baseline: dict[str, float], requests: int) -> list[Line]:
    """CPU milliseconds per request while the deliveries were being accepted (the workers applying them meanwhile),
    by kind of process, and in all: the burst is bound by the cores, and the goal's rate allows only so much."""
    allowed = (os.cpu_count() or 1) * 1000 / DRAIN_GOAL
    measure = "CPU per delivery while accepting, ms"
    lines = [
        Line(name, f"{measure}: {group}", ours[group] * 1000 / requests, baseline[group] * 1000 / requests)
        for group in ours
    ]
    total = f"{measure}: all ({os.cpu_count()} CPUs at {DRAIN_GOAL} a second allow {allowed:.1f})"
    return [*lines, Line(name, total, sum(ours.values()) * 1000 / requests, sum(baseline.values()) * 1000 / requests)]


def renewal_burst(port: int, renewals: int, auth: dict[str, str], workers: int, fake: FakeChargebee) -> list[Line]:
    """``renewals`` renewal deliveries (plus copies) from ``SENDERS`` threads to a queue-mode server."""
    subscriptions = renewals // RENEWALS_PER_SUBSCRIPTION
    # Renewals of subscriptions orgbilling already mirrors (before the first renewal), seat caps set; Chargebee
    # knows them too, so the next-charge estimates that follow are fetched.
    web._seed_subscriptions("burst_", subscriptions, version=0)
    for sub in range(subscriptions):
        fake.create_subscription(f"cust_burst_{sub}", PLAN, 3, id=f"sub_burst_{sub}")
    bodies = _deliveries(subscriptions, random.Random(6))

    cpu_before, started = cpu.snapshot(), time.perf_counter()
    base_results = load.run(port, [load.Request("POST", "/bench/rows", body) for body in bodies], SENDERS)
    baseline_seconds = time.perf_counter() - started
    base_cpu = cpu.spent(cpu_before, cpu.snapshot())

    ours = [load.Request("POST", "/api/webhooks/chargebee", body, auth) for body in bodies]
    cpu_before, started = cpu.snapshot(), time.perf_counter()
    ours_results = load.run(port, ours, SENDERS)
    accepted_seconds = time.perf_counter() - started
    ours_cpu = cpu.spent(cpu_before, cpu.snapshot())
    applied_seconds = wait_for_drain() - started
    drained_seconds = time.perf_counter() - started
    load.check_statuses(base_results, {200}, "renewal burst baseline")
    load.check_statuses(ours_results, {200, 202}, "renewal burst")

    sent = {json.loads(body)["id"] for body in bodies}
    deliveries = WebhookDelivery.objects.filter(event_id__startswith="ev_burst_")
    done = set(deliveries.filter(status__in=["processed", "ignored"]).values_list("event_id", flat=True))
    twice = deliveries.filter(attempts__gt=1).count()
    table = {
        row.id: (row.resource_version, row.current_period_end.timestamp())
        for row in Subscription.objects.filter(id__startswith="sub_burst_")
    }
    name = f"3. Renewal burst, queue mode, {workers} workers ({len(sent)} renewals + {len(bodies) - len(sent)} copies)"
    return [
        Line(name, "time to accept every delivery, s", accepted_seconds, baseline_seconds),
        Line(
            name,
            "time until every delivery is applied, s",
            applied_seconds,
            baseline_seconds,
            f"ratio <= {DRAIN_RATIO_GOAL:.2f}",
            applied_seconds / baseline_seconds <= DRAIN_RATIO_GOAL,
        ),
        Line(name, "time to drain the queue (next-charge estimates too), s", drained_seconds, baseline_seconds),
        Line(
            name,
            "deliveries applied per second",
            len(sent) / applied_seconds,
            "",
            f">= {DRAIN_GOAL}",
            len(sent) / applied_seconds >= DRAIN_GOAL,
        ),
        *_cpu_lines(name, ours_cpu, base_cpu, len(bodies)),
        Line(name, "lost deliveries", len(sent - done), "", "0", sent <= done),
        Line(name, "deliveries applied twice", twice, "", "0", twice == 0),
        Line(
            name,
            "final table equals the expected one",
            "yes" if table == _expected_table(subscriptions) else "no",
            "",
            "yes",
            table == _expected_table(subscriptions),
        ),
    ]
