"""Queue mode: deliveries processed by task workers instead of in the webhook request.

Why a task engine (Django's tasks API, with the django-tasks-db backend; see ``task_api``): a queued
delivery waits in the database, not in a process's memory, and workers
(``manage.py db_worker``) run on any number of machines against that one
database. The task calls the same ``deliveries.process_delivery`` as a live
webhook, so the guarantees are the delivery's own: its row lock and the
processed/ignored check make a second copy of a task a no-op, and the
``resource_version`` guard in ``subscription_sync`` makes the order in which
workers pick deliveries irrelevant.

The engine does not retry. A failed delivery is enqueued again here with
``run_after``, ``ORGBILLING_QUEUE_RETRY_BACKOFF`` seconds later and twice as
long each time, until it has been tried ``ORGBILLING_QUEUE_MAX_ATTEMPTS``
times; then it stays failed for a vendor retry or a replay.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from . import conf, deliveries
from .models import WebhookDelivery
from .task_api import task

logger = logging.getLogger(__name__)

# However many attempts are configured, no retry waits longer than this.
MAX_DELAY = timedelta(days=1)


def enqueue(delivery_id: int) -> None:
    """Queue a recorded delivery once the current transaction commits, so no worker reads it uncommitted."""
    transaction.on_commit(partial(process_delivery.enqueue, delivery_id))


@task()
def process_delivery(delivery_id: int) -> str:
    """A worker's job: process one delivery, and schedule its next try when it failed."""
    outcome = deliveries.process_delivery(delivery_id)
    if outcome.failed:
        retry_later(delivery_id)
    return outcome.status


def retry_later(delivery_id: int) -> datetime | None:
    """Schedule the next try of a failed delivery and return when it is due.

    None, scheduling nothing, when the delivery is no longer failed (another
    copy healed it), when a retry is already due later (two copies failed
    together), or when it has had all its tries.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != WebhookDelivery.Status.FAILED:
            return None
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return None
        if delivery.attempts >= conf.get("ORGBILLING_QUEUE_MAX_ATTEMPTS"):
            logger.warning(
                "delivery %s %s failed %d times; left failed for replay",
                delivery.vendor,
                delivery.event_id,
                delivery.attempts,
            )
            return None
        delay = timedelta(seconds=conf.get("ORGBILLING_QUEUE_RETRY_BACKOFF") * 2 ** (delivery.attempts - 1))
        delivery.next_attempt_at = now + min(delay, MAX_DELAY)
        delivery.save(update_fields=["next_attempt_at"])
        retry = process_delivery.using(run_after=delivery.next_attempt_at)
        transaction.on_commit(partial(retry.enqueue, delivery_id))
    logger.info(
        "delivery %s %s: try %d at %s",
        delivery.vendor,
        delivery.event_id,
        delivery.attempts + 1,
        delivery.next_attempt_at,
    )
    return delivery.next_attempt_at
