"""Reconciliation: pull subscriptions from Chargebee and apply them like webhooks.

Webhooks can be lost for good (Chargebee gives up after about two days) or
the endpoint misconfigured; this brings the local table back in line. It
lists subscriptions 100 a page, never one call per organization, and applies
each through ``apply_subscription``, so the ordering guard and the signals
behave exactly as for a webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from .billing_details import apply_customer_details
from .chargebee_gateway import get_gateway
from .chargebee_snapshot import InvalidSnapshot
from .deleted_org_cancellation import cancel_pending
from .models import Organization, Subscription
from .subscription_sync import ApplyResult, apply_subscription

logger = logging.getLogger(__name__)


@dataclass
class SyncSummary:
    """Counts of one run; the orphan and failure lists hold Chargebee subscription ids."""

    dry_run: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # Same resource_version as the row, but a mirrored field differed (a local-only change): Chargebee's copy won.
    repaired: list[str] = field(default_factory=list)
    orphaned_in_chargebee: list[str] = field(default_factory=list)  # no known organization
    orphaned_locally: list[str] = field(default_factory=list)  # linked locally, gone from Chargebee
    failed: list[str] = field(default_factory=list)  # snapshots orgbilling could not read
    # Subscriptions of deleted organizations cancelled in Chargebee with a refund (local ids), and those that
    # could not be (tried again next run); in a dry run, the ones that would be.
    cancelled_for_deleted: list[str] = field(default_factory=list)
    cancel_failed: list[str] = field(default_factory=list)

    @property
    def orphaned(self) -> int:
        return len(self.orphaned_in_chargebee) + len(self.orphaned_locally)

    def __str__(self) -> str:
        repaired = f"repaired {len(self.repaired)}" + (f" ({', '.join(self.repaired)})" if self.repaired else "")
        text = (
            f"created {self.created}, updated {self.updated}, {repaired}, unchanged {self.unchanged}"
            f", orphaned {self.orphaned}, failed {len(self.failed)}"
        )
        if self.cancelled_for_deleted or self.cancel_failed:
            text += f", cancelled for deleted organizations {len(self.cancelled_for_deleted)}"
            text += f", cancellations failed {len(self.cancel_failed)}" if self.cancel_failed else ""
        return text + (" (dry run: nothing was written)" if self.dry_run else "")

    def count(self, result: ApplyResult, subscription_id: str) -> None:
        if result.subscription is None:
            self.orphaned_in_chargebee.append(subscription_id)
        elif result.created:
            self.created += 1
        elif result.reason == "repaired":
            self.repaired.append(subscription_id)
        elif result.applied:
            self.updated += 1
        else:
            self.unchanged += 1
        if self.dry_run and result.cancel_pending:
            self.cancelled_for_deleted.append(result.subscription.pk)


def _apply(entry: dict, dry_run: bool) -> ApplyResult:
    if not dry_run:
        result = apply_subscription(entry["subscription"], entry.get("customer"))
        if isinstance(entry.get("customer"), dict) and result.subscription is not None:
            # Webhooks store the customer only when its version moves; a listing also fills a profile left behind.
            apply_customer_details(entry["customer"])
        return result
    # Apply, look, undo: the rollback also drops the signals queued on commit.
    with transaction.atomic():
        result = apply_subscription(entry["subscription"], entry.get("customer"))
        transaction.set_rollback(True)
    return result


def sync_subscriptions(
    *,
    organization: Organization | None = None,
    dry_run: bool = False,
    since: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> SyncSummary:
    """Apply every Chargebee subscription (or one organization's) to the local table.

    ``since`` lists only subscriptions Chargebee changed after that time (the
    cheap frequent catch-up); such a run does not look for local orphans, which
    only a full listing can show. ``dry_run`` computes the same summary but
    writes nothing, sends no signal and cancels nothing. ``progress`` is
    called with the running count after each subscription. Chargebee errors
    of the list calls propagate (nothing is half-counted). Then every
    subscription of a deleted organization still billed in Chargebee is
    cancelled with a full refund (outside any transaction); one that fails is
    listed and tried again next run.
    """
    summary = SyncSummary(dry_run=dry_run)
    customer_id = None
    if organization is not None:
        # The org id too: a customer created by a run that crashed before saving its id.
        customer_id = organization.chargebee_customer_id or organization.id
    seen: set[str] = set()
    updated_after = int(since.timestamp()) if since is not None else None
    entries = get_gateway().iter_subscriptions(customer_id=customer_id, updated_after=updated_after)
    for done, entry in enumerate(entries, start=1):
        subscription_id = str(entry["subscription"].get("id"))
        seen.add(subscription_id)
        try:
            summary.count(_apply(entry, dry_run), subscription_id)
        except InvalidSnapshot as exc:
            logger.warning("sync: subscription %s not applied: %s", subscription_id, exc)
            summary.failed.append(subscription_id)
        if progress is not None:
            progress(done)
    if since is None:
        linked = Subscription.objects.filter(chargebee_subscription_id__isnull=False)
        if organization is not None:
            linked = linked.filter(organization=organization)
        summary.orphaned_locally = sorted(set(linked.values_list("chargebee_subscription_id", flat=True)) - seen)
    if not dry_run:
        summary.cancelled_for_deleted, summary.cancel_failed = cancel_pending(organization)
    return summary
