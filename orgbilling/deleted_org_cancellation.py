"""A subscription that appears for a deleted organization is cancelled in Chargebee with a full refund.

A checkout paid after its organization was deleted (or any live subscription
Chargebee reports for one) would be billed forever with nobody left to manage
it. ``apply_subscription`` records the intent on the row
(``cancel_reason = organization_deleted``) in the transaction that applies
the snapshot; the functions here make the Chargebee call after that commit,
outside any lock, and apply Chargebee's answer through the same write path.
Until Chargebee reports the subscription cancelled the intent stays, so the
webhook's retry, the success return and every ``orgbilling_sync`` try again.
"""

from __future__ import annotations

import logging

from .chargebee_gateway import ChargebeeError, get_gateway
from .models import CancelReason, Organization, Subscription
from .subscription_sync import apply_subscription, awaits_refund_cancel

logger = logging.getLogger(__name__)


def cancel_with_refund(subscription_id: str) -> Subscription:
    """Cancel the row's Chargebee subscription now, refunding the current term in full; apply the answer.

    Does nothing for a row that no longer awaits it. Raises ``ChargebeeError``
    when Chargebee refuses or fails (the caller's retry tries again). It calls
    Chargebee, so never call it inside a transaction that holds row locks.
    """
    row = Subscription.objects.get(pk=subscription_id)
    if not awaits_refund_cancel(row) or not row.chargebee_subscription_id:
        return row
    cancelled = get_gateway().cancel_subscription_now(row.chargebee_subscription_id, refund=True)
    apply_subscription(cancelled)
    logger.info("cancelled %s of deleted organization %s with a full refund", row.pk, row.organization_id)
    return Subscription.objects.get(pk=subscription_id)


def pending_cancellations(organization: Organization | None = None) -> list[str]:
    """Ids of the rows still waiting for that cancellation (of one organization, or all)."""
    rows = Subscription.objects.filter(
        cancel_reason=CancelReason.ORGANIZATION_DELETED, chargebee_subscription_id__isnull=False
    )
    if organization is not None:
        rows = rows.filter(organization=organization)
    return [row.pk for row in rows if awaits_refund_cancel(row)]


def cancel_pending(organization: Organization | None = None) -> tuple[list[str], list[str]]:
    """Try every pending cancellation once; returns the ids cancelled and the ids that failed."""
    cancelled, failed = [], []
    for subscription_id in pending_cancellations(organization):
        try:
            cancel_with_refund(subscription_id)
        except ChargebeeError as exc:
            logger.warning("could not cancel %s of a deleted organization: %s", subscription_id, exc.summary)
            failed.append(subscription_id)
        else:
            cancelled.append(subscription_id)
    return cancelled, failed
