"""The next charge: Chargebee's renewal estimate, fetched after a change and stored with the subscription.

``/billing`` shows what the subscription will cost at ``next_billing_at`` as
Chargebee itself works it out (``GET /subscriptions/{id}/renewal_estimate``:
discounts, taxes, credits), never computed here from prices. A page view
never calls Chargebee (RULES 1), so the figure is fetched beforehand and
stored on the row: ``renewal_amount`` (the estimate's ``amount_due``),
``renewal_estimated_at``, and ``renewal_estimate_version``, the row's
``resource_version`` when it was fetched.

* **Marked in the same write**: a renewing subscription (``future``,
  ``in_trial``, ``active``) whose ``renewal_estimate_version`` is older than
  its ``resource_version`` needs an estimate. Every snapshot that
  ``apply_subscription`` writes with a newer version marks it so, in the same
  commit, whatever the event (change, renewal, activation, reactivation,
  cancellation removed, ...).
* **Fetched after the commit, never under a lock, never in a page request**:
  in queue mode a sweep task (``renewal_tasks``) is queued once the write commits;
  inline, the webhook stays a local write
  (issue 18: no Chargebee call in ingest) and the figure comes with the next
  ``orgbilling_sync`` run's ``--renewal-estimates`` pass. After orgbilling's
  own changes (cancel, keep, change) the action fetches it at once, outside
  its transaction (``refresh_after_change``).
* **Ordering**: an estimate is stored with the version it was fetched for,
  and only over one for the same or an older version, so a slow fetch for
  an older version never overwrites a newer figure.
* **Failure**: a fetch that fails (Chargebee down, a subscription Chargebee
  will not estimate) changes nothing; the old figure stays, shown as being
  updated, and the next sync (or the next change) fetches it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from . import conf
from .chargebee_gateway import ChargebeeError, ChargebeeGateway, get_gateway
from .models import CancelReason, Subscription

logger = logging.getLogger(__name__)

Status = Subscription.Status
# Chargebee estimates a renewal for these; a non_renewing one renews nothing (only delayed charges), and
# cancelled ones are refused.
RENEWING_STATUSES = (Status.FUTURE, Status.IN_TRIAL, Status.ACTIVE)
MAX_AMOUNT = 2**63 - 1  # the renewal_amount column (bigint)


class InvalidEstimate(ValueError):
    """Chargebee's answer lacks an amount orgbilling can store."""


def read_amount(estimate: Any) -> int:
    """The amount due at the next billing: ``estimate.invoice_estimate.amount_due`` (minor units)."""
    invoice = estimate.get("invoice_estimate") if isinstance(estimate, dict) else None
    if not isinstance(invoice, dict):
        raise InvalidEstimate("the estimate has no invoice_estimate")
    amount = invoice.get("amount_due", invoice.get("total"))
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
        raise InvalidEstimate("invoice_estimate.amount_due is not an integer from 0")
    return amount


def _renewing() -> Q:
    return Q(
        status__in=RENEWING_STATUSES,
        chargebee_subscription_id__isnull=False,
        deleted_at__isnull=True,
        resource_version__isnull=False,
    ) & ~Q(cancel_reason=CancelReason.ORGANIZATION_DELETED)


def needing_estimates() -> QuerySet[Subscription]:
    """Renewing subscriptions whose estimate is missing or older than their snapshot."""
    stale = Q(renewal_estimate_version__isnull=True) | Q(renewal_estimate_version__lt=F("resource_version"))
    return Subscription.objects.filter(_renewing() & stale)


def not_failed_yet() -> Q:
    """Rows whose current version has not had a failed fetch (what queue mode's sweeps take)."""
    failed = F("resource_version")
    return Q(renewal_estimate_failed_version__isnull=True) | Q(renewal_estimate_failed_version__lt=failed)


def needs_estimate(row: Subscription) -> bool:
    """The row's figure is missing or was fetched for an older version (the same test as ``needing_estimates``)."""
    renewing = (
        row.status in RENEWING_STATUSES
        and row.chargebee_subscription_id
        and row.deleted_at is None
        and row.resource_version is not None
        and row.cancel_reason != CancelReason.ORGANIZATION_DELETED
    )
    stored = row.renewal_estimate_version
    return bool(renewing) and (stored is None or stored < row.resource_version)


def is_stale(row: Subscription) -> bool:
    """Whether the stored figure predates the row's latest change (shown as being updated)."""
    return row.renewal_amount is not None and needs_estimate(row)


def fetch_estimate(subscription_id: str, gateway: ChargebeeGateway | None = None) -> str:
    """Fetch and store the row's renewal estimate if it needs one; returns what happened.

    ``stored``, ``superseded`` (a newer figure was stored meanwhile), ``not
    needed`` or ``failed`` (logged; the old figure stays, stale). It calls
    Chargebee: never call it inside a transaction that holds row locks.
    """
    row = Subscription.objects.filter(pk=subscription_id).first()
    if row is None or not needs_estimate(row):
        return "not needed"
    version = row.resource_version
    try:
        amount = read_amount((gateway or get_gateway()).renewal_estimate(row.chargebee_subscription_id))
    except (ChargebeeError, InvalidEstimate) as exc:
        reason = exc.summary if isinstance(exc, ChargebeeError) else str(exc)
        logger.warning("renewal estimate of %s not fetched: %s", subscription_id, reason)
        Subscription.objects.filter(pk=subscription_id).update(renewal_estimate_failed_version=version)
        return "failed"
    newest = Q(renewal_estimate_version__isnull=True) | Q(renewal_estimate_version__lte=version)
    stored = Subscription.objects.filter(newest, pk=subscription_id).update(
        renewal_amount=amount, renewal_estimated_at=timezone.now(), renewal_estimate_version=version
    )
    return "stored" if stored else "superseded"


def queued() -> bool:
    return conf.get("ORGBILLING_PROCESSING") == "queue"


def after_apply(row: Subscription) -> None:
    """Called by ``apply_subscription`` in its transaction: in queue mode, ask for a sweep after the commit.

    Inline this costs nothing (no query, no call): the sync pass fetches it.
    """
    if queued() and needs_estimate(row):
        from .renewal_tasks import ask_for_sweep

        ask_for_sweep()


def refresh_after_change(subscription_id: str) -> str:
    """After orgbilling's own change (cancel, keep, change) was applied and committed: the new figure now.

    Queue mode already queued it (``after_apply``); inline, it is fetched here,
    in the action's request, outside any transaction. Never raises.
    """
    if queued():
        return "queued"
    return fetch_estimate(subscription_id)


@dataclass
class EstimatesSummary:
    dry_run: bool = False
    stored: int = 0
    superseded: int = 0
    failed: list[str] = field(default_factory=list)
    wanted: list[str] = field(default_factory=list)  # a dry run's: what would be fetched

    def __str__(self) -> str:
        if self.dry_run:
            return f"renewal estimates: would fetch {len(self.wanted)} (dry run: nothing was called or written)"
        return f"renewal estimates: stored {self.stored}, superseded {self.superseded}, failed {len(self.failed)}"


def sync_estimates(
    *,
    organization_id: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    gateway: ChargebeeGateway | None = None,
) -> EstimatesSummary:
    """Fetch every missing or stale estimate (one ``GET /subscriptions/{id}/renewal_estimate`` each)."""
    summary = EstimatesSummary(dry_run=dry_run)
    rows = needing_estimates().order_by("pk")
    if organization_id is not None:
        rows = rows.filter(organization_id=organization_id)
    ids = list(rows.values_list("pk", flat=True))
    if dry_run:
        summary.wanted = ids
        return summary
    gateway = gateway or get_gateway()
    for done, subscription_id in enumerate(ids, start=1):
        outcome = fetch_estimate(subscription_id, gateway)
        if outcome == "failed":
            summary.failed.append(subscription_id)
        elif outcome == "superseded":
            summary.superseded += 1
        elif outcome == "stored":
            summary.stored += 1
        if progress is not None:
            progress(done)
    return summary
