"""The lease every attempt holds on its delivery, in inline mode (the clock is injected; nothing waits)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from orgbilling import deliveries
from orgbilling.models import WebhookDelivery
from tests.conftest import sample

pytestmark = pytest.mark.django_db

CREATED = sample("scalekit/webhooks/organization.created.json")


def killed_mid_attempt(owner: str) -> WebhookDelivery:
    """A delivery whose attempt began in a process that died before recording any outcome."""
    delivery = deliveries.record_delivery("scalekit", CREATED["id"], CREATED["type"], json.dumps(CREATED))
    with transaction.atomic():
        deliveries.begin_attempt(delivery, owner=owner, token="gone", now=timezone.now())
    return delivery


def test_a_copy_arriving_while_an_attempt_holds_the_lease_does_nothing_and_is_retried_later(
    post_scalekit, fake_chargebee
):
    killed_mid_attempt("web-1:42")
    response = post_scalekit(CREATED)
    assert (response.status_code, response.json()["status"]) == (409, "in_progress")
    assert fake_chargebee.calls() == [] and WebhookDelivery.objects.get().attempts == 1
    assert not deliveries.needing_replay().exists()  # still running, as far as anyone can tell


def test_an_attempt_lost_with_its_process_is_run_again_once_its_lease_runs_out(
    post_scalekit, fake_chargebee, settings, monkeypatch
):
    settings.ORGBILLING_QUEUE_LEASE = 60
    delivery = killed_mid_attempt("web-1:42")
    later = timezone.now() + timedelta(seconds=61)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert list(deliveries.needing_replay()) == [delivery]  # orgbilling_replay --failed picks it up too

    response = post_scalekit(CREATED)  # the vendor's retry
    assert (response.status_code, response.json()["status"]) == (200, "processed")
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.lease_until, delivery.lease_token) == (2, None, "")
    assert len(fake_chargebee.store.find("customer", [])) == 1


def test_an_attempt_that_outlived_its_lease_cannot_overwrite_its_successor(fake_chargebee, monkeypatch):
    delivery = killed_mid_attempt("web-1:42")
    stale = deliveries.Attempt(delivery.pk, "gone")
    with transaction.atomic():  # the successor took over with its own token
        taken = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        deliveries.begin_attempt(taken, owner="web-2:7", token="successor", now=timezone.now())
    monkeypatch.setattr("orgbilling.scalekit_events.handle_event", lambda event: None)
    assert deliveries.run_attempt(stale).in_progress
    delivery.refresh_from_db()
    assert (delivery.status, delivery.lease_token, delivery.lease_owner) == ("received", "successor", "web-2:7")
