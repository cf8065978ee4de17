"""Exactly one Chargebee customer however many callers race (PostgreSQL: real row locks).

Eight `organization.created` deliveries and a Subscribe click at once, served by gunicorn processes, are in
``tests/test_vendor_calls_outside_locks.py``.
"""

import json

import pytest
from django.db import connection  # noqa: F401  read by the skipif condition
from django.test import Client

from orgbilling.models import Organization, WebhookDelivery
from tests.conftest import sample, scalekit_headers
from tests.worker_support import run_concurrently

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row-lock concurrency needs PostgreSQL"),
]


def customers_made(fake) -> int:
    return len(fake.store.find("customer", []))


def test_concurrent_webhook_copies_run_one_attempt(fake_chargebee):
    payload = sample("scalekit/webhooks/organization.created.json")
    body = json.dumps(payload).encode()
    fake_chargebee.fail_next(1, path="/customers", timeout_seconds=1)  # the first attempt is still running

    def deliver():
        return Client().post("/api/webhooks/scalekit", body, content_type="application/json", **scalekit_headers(body))

    results = run_concurrently([deliver] * 6)
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * 5  # the copies found its lease: "in progress", nothing done, retry later
    assert {r.json()["status"] for r in results if r.status_code == 409} == {"in_progress"}
    assert WebhookDelivery.objects.get().attempts == 1
    assert len(fake_chargebee.calls("POST", "/customers")) == 1


def test_concurrent_updates_apply_the_newest_name(fake_chargebee):
    base = sample("scalekit/webhooks/organization.updated.json")
    org_id = base["data"]["id"]
    bodies = []
    for minute in range(8):
        payload = json.loads(json.dumps(base))
        payload["id"] = f"evt_update_{minute}"
        payload["data"].update(display_name=f"Name {minute}", update_time=f"2025-12-10T00:0{minute}:00Z")
        bodies.append(json.dumps(payload).encode())

    def sender(body):
        return lambda: Client().post(
            "/api/webhooks/scalekit", body, content_type="application/json", **scalekit_headers(body)
        )

    results = run_concurrently([sender(b) for b in reversed(bodies)])
    assert all(r.status_code == 200 for r in results)
    assert Organization.objects.get(pk=org_id).display_name == "Name 7"
    assert fake_chargebee.get_customer(org_id)["company"] == "Name 7"  # renames that land late are sent again
    assert customers_made(fake_chargebee) == 1
