"""``orgbilling_sync`` passes for the invoice and payment-source mirrors, and the loop every list pass shares.

Each pass lists one kind of object from Chargebee, 100 a page (never one call
per organization), optionally only those updated since a time, and applies
each through the mirror's one write path, so the ordering guard and the
signals behave exactly as for a webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction

from .chargebee_gateway import get_gateway
from .chargebee_snapshot import InvalidSnapshot
from .invoices import apply_invoice
from .payment_sources import apply_payment_source

logger = logging.getLogger(__name__)


@dataclass
class PassSummary:
    """Counts of one pass; ``failed`` holds the ids of objects orgbilling could not read."""

    name: str
    dry_run: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unknown: int = 0  # of a customer no organization uses
    failed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"{self.name}: created {self.created}, updated {self.updated}, unchanged {self.unchanged}"
            f", unknown customer {self.unknown}, failed {len(self.failed)}"
        )
        return text + (" (dry run: nothing was written)" if self.dry_run else "")


def run_pass(
    summary: PassSummary,
    entries: Iterable[dict],
    apply: Callable[[dict], Any],
    progress: Callable[[int], None] | None,
) -> PassSummary:
    for done, entry in enumerate(entries, start=1):
        try:
            if summary.dry_run:
                # Apply, look, undo: the rollback also drops the signals queued on commit.
                with transaction.atomic():
                    result = apply(entry)
                    transaction.set_rollback(True)
            else:
                result = apply(entry)
        except InvalidSnapshot as exc:
            logger.warning("sync: %s %s not applied: %s", summary.name, entry.get("id"), exc)
            summary.failed.append(str(entry.get("id")))
        else:
            if not result.applied:
                summary.unknown += result.reason == "unknown customer"
                summary.unchanged += result.reason != "unknown customer"  # stale, or not the primary source
            elif result.created:
                summary.created += 1
            else:
                summary.updated += 1
        if progress is not None:
            progress(done)
    return summary


def unix_time(since: datetime | None) -> int | None:
    return None if since is None else int(since.timestamp())


def sync_invoices(
    *,
    since: datetime | None = None,
    customer_id: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PassSummary:
    """Apply every Chargebee invoice (or those updated after ``since``). Chargebee errors propagate."""
    entries = get_gateway().iter_invoices(updated_after=unix_time(since), customer_id=customer_id)
    return run_pass(PassSummary("invoices", dry_run), entries, apply_invoice, progress)


def sync_payment_sources(
    *,
    since: datetime | None = None,
    customer_id: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PassSummary:
    """Apply every customer's payment sources (100 per list call, not one call per customer)."""
    entries = get_gateway().iter_payment_sources(updated_after=unix_time(since), customer_id=customer_id)
    return run_pass(PassSummary("payment sources", dry_run), entries, apply_payment_source, progress)
