"""Benchmark 4: ``manage.py orgbilling_sync`` over many subscriptions on the fake Chargebee.

The baseline lists the same subscriptions through the same gateway and does
nothing with them: what the sync costs beyond talking to Chargebee.
A third of the subscriptions are new locally, a third older than
Chargebee's copy, a third current.
"""

from __future__ import annotations

import io
import re
import time

from django.core.management import call_command
from django.db import transaction

from orgbilling.chargebee_gateway import PAGE_SIZE, get_gateway
from orgbilling.chargebee_snapshot import SubscriptionSnapshot
from orgbilling.models import Organization, Subscription
from sandbox.fake_chargebee import FakeChargebee
from tests.chargebee_payloads import PLAN

from .report import Line


def _seed(fake: FakeChargebee, count: int) -> dict[str, int]:
    """The subscriptions in Chargebee, and their organizations (and two thirds of their rows) locally."""
    organizations, rows = [], []
    for i in range(count):
        sub = fake.create_subscription(f"cust_rec_{i}", PLAN, 2, id=f"sub_rec_{i}")
        organization = Organization(id=f"org_rec_{i}", chargebee_customer_id=f"cust_rec_{i}")
        organizations.append(organization)
        if i % 3:
            # Current: exactly the row Chargebee's snapshot makes (an equal version that differs is repaired).
            fields = SubscriptionSnapshot.read(sub).fields
            if i % 3 == 1:  # older: an earlier version, with another seat count
                fields.update(resource_version=sub["resource_version"] - 1, seats=1)
            rows.append(
                Subscription(id=sub["id"], organization=organization, chargebee_subscription_id=sub["id"], **fields)
            )
    with transaction.atomic():
        Organization.objects.bulk_create(organizations)
        Subscription.objects.bulk_create(rows)
    return {
        "created": len(range(0, count, 3)),
        "updated": len(range(1, count, 3)),
        "unchanged": len(range(2, count, 3)),
    }


def reconciliation(fake: FakeChargebee, count: int) -> list[Line]:
    expected = _seed(fake, count)

    fake.reset_calls()
    started = time.perf_counter()
    listed = sum(1 for _ in get_gateway().iter_subscriptions())
    baseline_seconds = time.perf_counter() - started
    baseline_calls = len(fake.calls("GET", "/subscriptions"))

    fake.reset_calls()
    output = io.StringIO()
    started = time.perf_counter()
    call_command("orgbilling_sync", "--chargebee", stdout=output, stderr=io.StringIO())
    sync_seconds = time.perf_counter() - started
    list_calls = len(fake.calls("GET", "/subscriptions"))
    other_calls = len(fake.calls()) - list_calls

    counts = {name: int(number) for name, number in re.findall(r"(created|updated|unchanged) (\d+)", output.getvalue())}
    if listed != count or counts != expected:
        raise RuntimeError(
            f"reconciliation: listed {listed}, summary {output.getvalue().strip()!r}, expected {expected}"
        )
    goal = -(-count // PAGE_SIZE)
    name = f"4. Reconciliation, orgbilling_sync ({count} subscriptions)"
    return [
        Line(name, "wall time, s", sync_seconds, baseline_seconds),
        Line(name, "list calls", list_calls, baseline_calls, str(goal), list_calls == goal),
        Line(name, "other Chargebee calls", other_calls, "", "0", other_calls == 0),
        Line(name, "created / updated / unchanged", " / ".join(str(counts[k]) for k in expected)),
    ]
