"""Queue mode's seat tasks: send a stored seat limit (retried with backoff) and recount members.

Both read the organization's row when they run, so a task that runs twice,
late, or after a newer one does no harm: a send sends the limit wanted *now*,
and a count never overwrites a newer one. A send still pending after
``ORGBILLING_QUEUE_MAX_ATTEMPTS`` tries is left to ``orgbilling_sync``.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tasks import task

from . import conf
from .models import Organization, SeatLimitStatus
from .seat_counts import recount_quietly
from .seat_limits import send_limit
from .tasks import MAX_DELAY


@task()
def send_seat_limit(organization_id: str, attempt: int) -> str:
    status = send_limit(organization_id)
    if status == SeatLimitStatus.PENDING and attempt < conf.get("ORGBILLING_QUEUE_MAX_ATTEMPTS"):
        delay = timedelta(seconds=conf.get("ORGBILLING_QUEUE_RETRY_BACKOFF") * 2 ** (attempt - 1))
        retry = send_seat_limit.using(run_after=timezone.now() + min(delay, MAX_DELAY))
        retry.enqueue(organization_id, attempt + 1)
    return status


@task()
def recount_seats(organization_id: str) -> str:
    # Free the claim first: an event arriving during this pass queues the next one.
    Organization.objects.filter(pk=organization_id).update(seats_recount_claimed_at=None)
    count = recount_quietly(organization_id)
    return "failed" if count is None else f"{count.used} used, {count.pending} pending"
