"""Queue mode: deliveries processed by task workers instead of in the webhook request.

Why a task engine (Django's tasks API, with the django-tasks-db backend; see ``task_api``): a queued
delivery waits in the database, not in a process's memory, and workers
(``manage.py db_worker``) run on any number of machines against that one
database. A task runs the same attempt as a live webhook
(``deliveries.run_attempt``), and the ``resource_version`` guard in
``subscription_sync`` makes the order in which workers pick deliveries
irrelevant.

**One queued task per delivery** (``WebhookDelivery.task_id``, due at
``next_attempt_at``) while it is not done, so nothing is ever lost and nothing
runs twice:

* a webhook (first copy or vendor redelivery) queues a task only when the
  delivery has none pending; a redelivery of a delivery already waiting for
  its retry changes nothing, so redeliveries never start parallel retry chains;
* when a worker claims the task, in the very transaction in which ``db_worker``
  marks it running (a ``post_save`` receiver on its result row), the attempt
  takes its lease and queues its **successor**, due when the lease runs out
  plus the backoff. There is no moment at which a claimed task has no
  successor, so a worker killed or cut off from the database at any point is
  followed by whichever ``db_worker`` polls next once the lease is over: no
  cron, no reaper, nothing but the running workers;
* when the attempt ends, the successor is moved rather than added: deleted
  after success, brought forward to the backoff after a failure
  (``ORGBILLING_QUEUE_RETRY_BACKOFF`` seconds, doubled per attempt), or
  deleted when the ``ORGBILLING_QUEUE_MAX_ATTEMPTS`` are spent, leaving the
  delivery failed for a vendor retry or a replay. Lost attempts count too.

The engine itself does not retry and leaves a killed task ``RUNNING`` forever;
the successor, not that row, is what carries the delivery on.

A delivery that needs no vendor call skips all that: it is applied in the
claim's own transaction (``local_deliveries``), **together with up to
``ORGBILLING_QUEUE_BATCH - 1`` ready peers** taken with their tasks, one
commit for the batch (``_ready_peers``, ``_apply_batch``). After a batch smaller than that the worker
waits ``ORGBILLING_QUEUE_LINGER`` before it claims again (``_linger``), so that a steady stream of
deliveries is applied in batches too, not a claim each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.signals import post_save
from django.utils import timezone

from . import conf, deliveries, local_deliveries, renewal_tasks
from .compiled_queries import CompiledQuery, insert_statement, preparing_cursor
from .models import WebhookDelivery
from .task_api import TaskContext, TaskResultStatus, task

logger = logging.getLogger(__name__)

# However many attempts are configured, no retry waits longer than this.
MAX_DELAY = timedelta(days=1)
READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
# Task id -> outcome of the attempt made in this process's latest claim (db_worker runs what it just claimed),
# and how many deliveries that claim applied.
_applied_in_claim: dict[str, tuple[str, int]] = {}


def enqueue(delivery_id: int) -> bool:
    """Queue a recorded delivery unless it already has a task pending; True when one was queued.

    The task row is written in the same transaction as the delivery's
    ``task_id``, so no worker sees one without the other.
    """
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.is_done or _pending(delivery):
            return False
        _schedule(delivery, timezone.now())
        delivery.save(update_fields=["task_id", "next_attempt_at"])
    return True


def record_and_enqueue(vendor: str, event_id: str, event_type: str, body: str) -> WebhookDelivery | None:
    """Record a new delivery and queue its task together; None, writing nothing, for an event already recorded.

    The task names its delivery by vendor and event id (the row has no id yet). On PostgreSQL, outside a
    caller's transaction, both rows go in one statement (``_insert_together``): atomic on its own and one
    round trip, where two inserts in a transaction are four. Elsewhere, two inserts in one transaction.
    Either way a copy already recorded fails the delivery's insert and writes nothing, task included, and
    no worker sees the task without its delivery.
    """
    now = timezone.now()
    queued = _task_row(now, vendor, event_id)
    delivery = WebhookDelivery(
        vendor=vendor, event_id=event_id, event_type=event_type, body=body, task_id=queued.pk, next_attempt_at=now
    )
    try:
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            _insert_together(queued, delivery)
        else:
            with transaction.atomic():
                queued.save(force_insert=True)
                delivery.save(force_insert=True)
    except IntegrityError:
        return None
    return delivery


def _task_row(at: datetime, *args: Any) -> Any:
    """The unsaved row ``process_delivery.using(run_after=at).enqueue(*args)`` writes (its ``DBTaskResult``).

    Built here so it can share a statement with its delivery; tests/test_queue.py compares it with the
    backend's own row, so an upgrade of django-tasks-db that changes what enqueue writes fails there.
    """
    from django_tasks_db.models import DBTaskResult

    queued = process_delivery.using(run_after=at)
    return DBTaskResult(
        args_kwargs={"args": list(args), "kwargs": {}},
        priority=queued.priority,
        task_path=queued.module_path,
        queue_name=queued.queue_name,
        run_after=at,
        backend_name=queued.backend,
    )


def _insert_together(*rows: Any) -> None:
    """Insert the rows in one statement (data-modifying ``WITH``s, PostgreSQL), the last one's id returned.

    Each row's INSERT is Django's own (defaults, ``auto_now``, value conversion); only the joining is here.
    """
    *first, last = (insert_statement(row, connection.alias, returning=row is rows[-1]) for row in rows)
    with_parts = ", ".join(f"row_{number} AS ({sql})" for number, (sql, _) in enumerate(first))
    params = [param for _, row_params in first for param in row_params] + list(last[1])
    with preparing_cursor(connection) as cursor:  # prepared once per connection where psycopg may
        cursor.execute(f"WITH {with_parts} {last[0]}", params)
        rows[-1].pk = cursor.fetchone()[0]
    for row in rows:
        row._state.adding, row._state.db = False, connection.alias


def _named(delivery: int | str, event_id: str | None = None) -> Q:
    """The delivery a task names: by id (``_schedule``), or by vendor and event id (``record_and_enqueue``)."""
    return Q(vendor=delivery, event_id=event_id) if event_id is not None else Q(pk=delivery)


def _all_named(tasks_args: Iterable[list]) -> Q:
    """The deliveries named by several tasks' arguments (see ``_named``): one ``IN`` list for the ids and one per
    vendor for the event ids, where an ``OR`` of one pair per task grows the statement's planning with the batch."""
    ids: list[int] = []
    events: dict[str, list[str]] = {}
    for args in tasks_args:
        if len(args) == 2:
            events.setdefault(args[0], []).append(args[1])
        else:
            ids.append(args[0])
    named = Q(pk__in=ids)
    for vendor, event_ids in events.items():
        named |= Q(vendor=vendor, event_id__in=event_ids)
    return named


@task(takes_context=True)
def process_delivery(context: TaskContext, delivery: int | str, event_id: str | None = None) -> str:
    """A worker's job: run the attempt begun when this task was claimed (nothing, for a stray copy).

    The delivery is named by its id, or by its vendor and event id (see ``_named``).
    A delivery applied in the claim itself (``local_deliveries``) only reports that attempt's outcome.
    """
    token = str(context.task_result.id)
    if token in _applied_in_claim:
        status, batch = _applied_in_claim.pop(token)
        _linger(batch)
        return status
    leased = WebhookDelivery.objects.filter(_named(delivery, event_id), lease_token=token)
    delivery_id = leased.values_list("pk", flat=True).first()
    if delivery_id is None:
        return "skipped"
    try:
        return deliveries.run_attempt(deliveries.Attempt(delivery_id, token), _after_attempt).status
    except DatabaseError:
        # The connection dropped mid-attempt: let db_worker record this task on a fresh connection.
        # The delivery's successor task retries it when the lease runs out.
        connection.close()
        raise


def pause(seconds: float) -> None:
    """How a worker lingers between claims (tests record the waits instead)."""
    time.sleep(seconds)


def _linger(batch: int) -> None:
    """After a claim that applied less than a full batch, wait ``ORGBILLING_QUEUE_LINGER`` before the next.

    A short batch means the queue was shallow: claiming again at once would take the few deliveries that
    arrived meanwhile, each paying most of a claim's work (db_worker's statements, the locked reads, the
    commit). Waiting lets them gather into one batch. A full batch means a backlog: no wait.
    """
    seconds = conf.get("ORGBILLING_QUEUE_LINGER")
    if seconds > 0 and batch < conf.get("ORGBILLING_QUEUE_BATCH"):
        pause(seconds)


def backoff(attempts: int) -> timedelta:
    """The wait before the attempt after ``attempts`` failed ones."""
    delay = timedelta(seconds=conf.get("ORGBILLING_QUEUE_RETRY_BACKOFF") * 2 ** max(attempts - 1, 0))
    return min(delay, MAX_DELAY)


def _pending(delivery: WebhookDelivery) -> bool:
    from django_tasks_db.models import DBTaskResult

    return delivery.task_id is not None and DBTaskResult.objects.filter(pk=delivery.task_id, status=READY).exists()


def _schedule(delivery: WebhookDelivery, at: datetime) -> None:
    """Make the delivery's one queued task due at ``at``: move the queued one, or queue a new one."""
    from django_tasks_db.models import DBTaskResult

    queued = DBTaskResult.objects.filter(pk=delivery.task_id, status=READY) if delivery.task_id else None
    if not (queued and queued.update(run_after=at)):
        delivery.task_id = process_delivery.using(run_after=at).enqueue(delivery.pk).id
    delivery.next_attempt_at = at


def _unschedule(delivery: WebhookDelivery) -> None:
    from django_tasks_db.models import DBTaskResult

    if delivery.task_id:
        DBTaskResult.objects.filter(pk=delivery.task_id, status=READY).delete()
    delivery.task_id = delivery.next_attempt_at = None


def _give_up(delivery: WebhookDelivery) -> None:
    logger.warning(
        "delivery %s %s: %d attempts spent; left failed for replay (%s)",
        delivery.vendor,
        delivery.event_id,
        delivery.attempts,
        delivery.last_error,
    )
    _unschedule(delivery)


def _after_attempt(delivery: WebhookDelivery, outcome: deliveries.Outcome) -> None:
    """Move the successor queued when the attempt began to where the outcome says the next one belongs."""
    if not outcome.failed:
        _unschedule(delivery)
    elif outcome.incomplete:
        _schedule(delivery, timezone.now())  # progress was made: go on at once, budget untouched
    elif delivery.attempts >= conf.get("ORGBILLING_QUEUE_MAX_ATTEMPTS"):
        _give_up(delivery)
    else:
        _schedule(delivery, timezone.now() + backoff(delivery.attempts))
        logger.info(
            "delivery %s %s: attempt %d at %s",
            delivery.vendor,
            delivery.event_id,
            delivery.attempts + 1,
            delivery.next_attempt_at,
        )


def begin_claimed(claimed: Any) -> None:
    """Begin the attempt of the task ``db_worker`` is claiming (its ``DBTaskResult``), inside its claim transaction."""
    now = timezone.now()
    task_id = claimed.id
    delivery = _locked_named(*claimed.args_kwargs["args"])
    if delivery is None or delivery.is_done or str(delivery.task_id or task_id) != str(task_id):
        return  # done, or a stray copy: the delivery's own task is another one
    if delivery.leased(now):
        # Due early (clocks differ): the running attempt needs a successor still.
        _schedule(delivery, delivery.lease_until)
        delivery.save(update_fields=["task_id", "next_attempt_at"])
        return
    lost = deliveries.note_lost(delivery, now)
    if lost and delivery.attempts >= conf.get("ORGBILLING_QUEUE_MAX_ATTEMPTS"):
        _give_up(delivery)
        delivery.save(update_fields=["status", "last_error", "task_id", "next_attempt_at", *deliveries.LEASE_FIELDS])
        return
    delivery.task_id = None  # the claimed task is spent
    if local_deliveries.applies_locally(delivery.vendor, delivery.event_type):
        # No vendor call: applied here, in the claim's transaction, with ready peers; no lease.
        peers = _ready_peers(claimed)
        outcome = _apply_batch(delivery, peers)
        if outcome is not None:
            _applied_in_claim.clear()  # one claim at a time: an entry left by a claim that never committed goes
            _applied_in_claim[str(task_id)] = outcome.status, 1 + len(peers)
            return
    deliveries.begin_attempt(delivery, owner=claimed.worker_ids[-1], token=str(task_id), now=now)
    # The successor takes the claimed task's place.
    _schedule(delivery, delivery.lease_until + backoff(delivery.attempts))
    delivery.save(update_fields=["task_id", "next_attempt_at"])


# The delivery a task names by vendor and event id (every webhook's), locked: a read of every claim, built once.
_BY_EVENT = CompiledQuery(
    lambda vendor, event_id: WebhookDelivery.objects.select_for_update().filter(_named(vendor, event_id))
)


def _locked_named(*args: Any) -> WebhookDelivery | None:
    if len(args) == 2:
        return _BY_EVENT.first(*args)
    return WebhookDelivery.objects.select_for_update().filter(_named(*args)).first()


def _ready_peers(claimed: Any) -> list[WebhookDelivery]:
    """Up to ``ORGBILLING_QUEUE_BATCH - 1`` more deliveries, due and needing no vendor call, locked with their tasks.

    Taken like ``db_worker`` takes one (its order, its backend and queue, ``SKIP LOCKED``), so two workers never
    share one. A peer's task stays queued and locked until the claim commits: ``_after_attempt`` deletes it after
    a success or moves it to the retry, and one left alone (it needs a vendor call) is claimed on its own later.
    Lost attempts are left to their own claim, which records them.
    """
    from django_tasks_db.models import DBTaskResult

    size = conf.get("ORGBILLING_QUEUE_BATCH") - 1
    if size < 1:
        return []
    ready = DBTaskResult.objects.ready().filter(
        task_path=process_delivery.module_path, backend_name=claimed.backend_name, queue_name=claimed.queue_name
    )
    locked = ready.exclude(pk=claimed.pk).select_for_update(skip_locked=True)
    tasks = {str(pk): args_kwargs for pk, args_kwargs in locked.values_list("pk", "args_kwargs")[:size]}
    if not tasks:
        return []
    candidates = WebhookDelivery.objects.select_for_update(skip_locked=True).filter(
        _all_named(args_kwargs["args"] for args_kwargs in tasks.values()),
        status__in=[deliveries.Status.RECEIVED, deliveries.Status.FAILED],
        lease_until__isnull=True,
    )
    return [
        peer
        for peer in candidates
        if str(peer.task_id) in tasks and local_deliveries.applies_locally(peer.vendor, peer.event_type)
    ]


def _lock_order(event: dict) -> tuple[str, str]:
    """The customer and subscription an event writes: a batch applies its events in this order.

    Applying locks the customer's organization, then the subscription: taken in one order by every worker, two
    batches never wait on each other in a cycle.
    """
    content = event.get("content") if isinstance(event, dict) else None
    subscription = content.get("subscription") if isinstance(content, dict) else None
    if not isinstance(subscription, dict):
        return "", ""
    return str(subscription.get("customer_id", "")), str(subscription.get("id", ""))


def _apply_batch(claimed: WebhookDelivery, peers: list[WebhookDelivery]) -> deliveries.Outcome | None:
    """Apply the claimed delivery and its peers (``local_deliveries.apply_batch``); the claimed one's outcome.

    None when the claimed delivery needs a vendor call after all: it is left untouched for the lease path.
    """
    events = {delivery.pk: delivery.payload for delivery in [claimed, *peers]}
    batch = sorted([claimed, *peers], key=lambda delivery: (_lock_order(events[delivery.pk]), delivery.pk))
    fields = ["attempts", "status", "last_error", "processed_at", "task_id", "next_attempt_at"]
    claimed_outcome, done = None, []
    with renewal_tasks.one_sweep_for_the_batch():
        outcomes = local_deliveries.apply_batch([(delivery, events[delivery.pk]) for delivery in batch])
        for delivery, outcome in zip(batch, outcomes, strict=True):
            if outcome.needs_lease:
                continue  # untouched: a peer's task stays queued; the claimed one takes the lease path
            if outcome.failed:
                _after_attempt(delivery, outcome)
                delivery.save(update_fields=[*fields, *deliveries.LEASE_FIELDS])
            else:
                done.append(delivery)
            if delivery is claimed:
                claimed_outcome = outcome
    _record_done(done)
    return claimed_outcome


def _record_done(done: list[WebhookDelivery]) -> None:
    """Record the batch's successes as ``_after_attempt`` and a save would for each, in one statement for their
    tasks and one per outcome (processed, or ignored with its reason) for the deliveries.

    The deliveries are locked by the claim, so ``attempts + 1`` counts the attempt just made, once.
    """
    from django_tasks_db.models import DBTaskResult

    tasks = [delivery.task_id for delivery in done if delivery.task_id]
    if tasks:
        DBTaskResult.objects.filter(pk__in=tasks, status=READY).delete()
    outcomes: dict[tuple[str, str], list[int]] = {}
    for delivery in done:
        outcomes.setdefault((delivery.status, delivery.last_error), []).append(delivery.pk)
    for (status, error), ids in outcomes.items():
        WebhookDelivery.objects.filter(pk__in=ids).update(
            status=status,
            last_error=error,
            attempts=F("attempts") + 1,
            processed_at=timezone.now(),
            task_id=None,
            next_attempt_at=None,
            lease_until=None,  # a lost attempt's, cleared by note_lost
            lease_owner="",
            lease_token="",
        )


def _on_task_saved(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    """db_worker's claim saves the result row as RUNNING with the worker's id: begin the attempt there."""
    if instance.status != RUNNING or not update_fields or "worker_ids" not in update_fields:
        return
    if instance.task_path != process_delivery.module_path:
        return
    begin_claimed(instance)


def connect_to_workers() -> None:
    """Begin attempts in db_worker's claim (called from ``AppConfig.ready`` when django_tasks_db is installed)."""
    from django_tasks_db.models import DBTaskResult

    post_save.connect(_on_task_saved, sender=DBTaskResult, dispatch_uid="orgbilling.tasks.begin_claimed")
