"""Queue mode's renewal-estimate tasks: fetch the next charges that changes committed left missing or stale.

One **sweep** stands for every change waiting for its figure: a commit that
leaves a row needing an estimate queues ``fetch_renewal_estimates`` only when
no sweep is queued and not yet started (that one will see the row, since it
reads the rows when it runs). So a burst of 10,000 renewals of 1,000
subscriptions costs about 1,000 fetches and a handful of tasks, not 10,000 of
each. A sweep walks the rows in key order, ``SWEEP_SIZE`` at a time, and
yields to deliveries waiting for a worker: what it has not reached goes on in
a follow-up task (``go_on_fetching_renewal_estimates``), queued below the
deliveries again, so estimates never hold up a burst.

Each fetch reads the row first (``fetch_estimate``), so a row already done
costs a query, not a call. A fetch that fails (after the gateway's own bounded
retries) is not retried by later sweeps (the row keeps the version that
failed): the old figure stays, shown as being updated, until the row changes
again or ``orgbilling_sync --renewal-estimates`` runs. So a Chargebee outage
costs one call per change and never leaves the queue busy with retries.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction

from .renewal_estimates import fetch_estimate, needing_estimates, not_failed_yet
from .task_api import TaskResultStatus, task

logger = logging.getLogger(__name__)

# Below the deliveries' default 0: workers take ready deliveries first, so a burst of renewals is applied at full
# speed and the figures for its subscriptions follow.
ESTIMATE_PRIORITY = -10
SWEEP_SIZE = 100
# Set while a worker applies a batch of deliveries: one sweep is asked for after the batch, not one per row.
_batched: ContextVar[list[bool] | None] = ContextVar("orgbilling_estimates_batched", default=None)


def ask_for_sweep() -> None:
    """After the current transaction commits, make sure a sweep will run (called for a row needing an estimate)."""
    asked = _batched.get()
    if asked is None:
        transaction.on_commit(_queue_sweep)
    elif not asked:
        asked.append(True)


@contextmanager
def one_sweep_for_the_batch() -> Iterator[None]:
    """Rows applied inside ask for one sweep between them, on the commit of the transaction they are in."""
    asked: list[bool] = []
    token = _batched.set(asked)
    try:
        yield
    finally:
        _batched.reset(token)
    if asked:
        transaction.on_commit(_queue_sweep)


def _queue_sweep() -> None:
    from django_tasks_db.models import DBTaskResult

    try:
        waiting = DBTaskResult.objects.filter(
            task_path=fetch_renewal_estimates.module_path, status=TaskResultStatus.READY
        )
        if not waiting.exists():
            fetch_renewal_estimates.enqueue()
    except Exception:  # noqa: BLE001  after the commit nothing can be undone; the sync pass fetches it
        logger.exception("could not queue the renewal estimates sweep")


def _deliveries_waiting() -> bool:
    from django_tasks_db.models import DBTaskResult

    from .tasks import process_delivery

    return DBTaskResult.objects.ready().filter(task_path=process_delivery.module_path).exists()


def _sweep(after: str) -> str:
    """Fetch the estimates rows after ``after`` need, up to ``SWEEP_SIZE``; queue the rest if any is left."""
    rows = needing_estimates().filter(not_failed_yet(), pk__gt=after).order_by("pk")
    ids = list(rows.values_list("pk", flat=True)[:SWEEP_SIZE])
    outcomes: Counter[str] = Counter()
    done: list[str] = []
    for subscription_id in ids:
        outcomes[fetch_estimate(subscription_id)] += 1
        done.append(subscription_id)
        if len(done) < len(ids) and _deliveries_waiting():
            break  # the rest after them
    if done and (len(done) < len(ids) or len(ids) == SWEEP_SIZE):
        go_on_fetching_renewal_estimates.enqueue(done[-1])
    return ", ".join(f"{outcome} {count}" for outcome, count in sorted(outcomes.items())) or "none needed"


@task(priority=ESTIMATE_PRIORITY)
def fetch_renewal_estimates() -> str:
    """The sweep queued after changes (coalesced: see the module's docstring)."""
    return _sweep("")


@task(priority=ESTIMATE_PRIORITY)
def go_on_fetching_renewal_estimates(after: str) -> str:
    """The rest of a sweep, from the row after ``after`` (not coalesced: it stands for no new change)."""
    return _sweep(after)


@task(priority=ESTIMATE_PRIORITY)
def fetch_renewal_estimate(subscription_id: str) -> str:
    """One subscription's estimate: what changes queued before the sweep; kept so those tasks still run."""
    return fetch_estimate(subscription_id)
