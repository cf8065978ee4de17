"""Management commands: pruning the delivery log and replaying deliveries."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from orgbilling.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def delivery(event_id: str, status: str, age_days: float) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        vendor="scalekit",
        event_id=event_id,
        event_type="user.signup",
        body=json.dumps({"id": event_id, "type": "user.signup"}),
        status=status,
        received_at=timezone.now() - timedelta(days=age_days),
    )


def test_prune_deletes_only_old_finished_deliveries():
    delivery("evt_old_done", "processed", 40)
    delivery("evt_old_ignored", "ignored", 31)
    delivery("evt_old_failed", "failed", 40)
    delivery("evt_recent", "processed", 5)
    call_command("orgbilling_prune_deliveries")
    assert set(WebhookDelivery.objects.values_list("event_id", flat=True)) == {"evt_old_failed", "evt_recent"}


def test_prune_respects_chargebee_dedupe_window():
    delivery("evt_4_days", "processed", 4)
    with pytest.raises(CommandError, match="3 days 7 hours"):
        call_command("orgbilling_prune_deliveries", "--older-than", "3")
    call_command("orgbilling_prune_deliveries", "--older-than", "3.5")
    assert not WebhookDelivery.objects.exists()


def test_replay_requires_a_selection():
    with pytest.raises(CommandError, match="--failed"):
        call_command("orgbilling_replay")


def test_replay_by_id_reports_unknown_ids():
    with pytest.raises(CommandError, match="evt_nope"):
        call_command("orgbilling_replay", "--id", "evt_nope")


def test_replay_by_id_leaves_processed_ones_alone():
    done = delivery("evt_done", "processed", 1)
    received = delivery("evt_received", "received", 1)
    call_command("orgbilling_replay", "--id", "evt_done", "--id", "evt_received")
    done.refresh_from_db()
    received.refresh_from_db()
    assert (done.status, done.attempts) == ("processed", 0)
    assert (received.status, received.attempts) == ("ignored", 1)
