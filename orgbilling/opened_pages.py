"""Chargebee pages opened here (``OpenedPage``) and the returns that claim them.

Issue 9's rule for every return from Chargebee (checkout, portal, paying
dues, replacing the card): it is never refused nor throttled, and only the
first return from a page this site recorded costs Chargebee calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.models import QuerySet
from django.utils import timezone

from .middleware import BillingContext
from .models import OpenedPage, Subscription


def record_page(context: BillingContext, kind: str, vendor_id: str, subscription: Subscription | None = None) -> None:
    """Record a page or portal session just opened: one INSERT, so concurrent tabs never lose one."""
    OpenedPage.objects.create(
        vendor_id=vendor_id,
        kind=kind,
        organization_id=context.organization_id,
        subscription=subscription,
        user_id=context.user_id,
    )


@contextmanager
def first_return(pages: QuerySet[OpenedPage]) -> Iterator[bool]:
    """Claim the pages not returned from yet: True for the return that claims them, False for any later one.

    A failure inside gives the claim back, so a later return may try again.
    """
    now = timezone.now()
    claimed = list(pages.filter(returned_at__isnull=True).values_list("pk", flat=True))
    first = (
        bool(claimed)
        and OpenedPage.objects.filter(pk__in=claimed, returned_at__isnull=True).update(returned_at=now) > 0
    )
    try:
        yield first
    except Exception:
        if first:
            OpenedPage.objects.filter(pk__in=claimed, returned_at=now).update(returned_at=None)
        raise
