"""Exactly one Chargebee customer however many callers race (PostgreSQL: real row locks)."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from orgbilling.models import Organization, WebhookDelivery
from orgbilling.provisioning import ensure_customer
from tests.conftest import sample, scalekit_headers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row-lock concurrency needs PostgreSQL"),
]


def run_concurrently(functions):
    """Start every function at once (behind a barrier) in its own thread with its own DB connection."""
    barrier = threading.Barrier(len(functions))
    results, errors = [None] * len(functions), []

    def worker(index, func):
        try:
            barrier.wait()
            results[index] = func()
        except Exception as exc:  # noqa: BLE001  collected and asserted on below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def test_concurrent_webhook_copies_and_checkout_clicks_create_one_customer(fake_chargebee):
    payload = sample("scalekit/webhooks/organization.created.json")
    org_id = payload["data"]["id"]
    body = json.dumps(payload).encode()

    def deliver():
        return Client().post("/api/webhooks/scalekit", body, content_type="application/json", **scalekit_headers(body))

    def click_subscribe():
        return ensure_customer(org_id).chargebee_customer_id

    results = run_concurrently([deliver] * 6 + [click_subscribe] * 4)
    assert [r.status_code for r in results[:6]] == [200] * 6
    assert set(results[6:]) == {org_id}
    assert len(fake_chargebee.calls("POST", "/customers")) == 1
    assert Organization.objects.get(pk=org_id).chargebee_customer_id == org_id
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("processed", 1)


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
    assert fake_chargebee.get_customer(org_id)["company"] == "Name 7"
    assert len(fake_chargebee.calls("POST", "/customers")) == 1
