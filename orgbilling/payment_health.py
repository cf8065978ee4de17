"""Past due: what the billing page says about it, paying the dues now, and the end of the grace period.

The state comes from the subscription snapshot (``due_invoices_count``,
``total_dues``, ``due_since``), applied by webhooks and syncs; nothing here
reads Chargebee on a page view. "Pay now" opens Chargebee's ``collect_now``
page (billing managers, throttled) and records it; coming back follows the
rule of every return (``orgbilling.opened_pages``): never refused nor
throttled, and only the first return from a recorded page re-reads the
organization's subscriptions and invoices, so the page shows the result at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from . import conf, signals
from .authorization import Action, authorize_reference, require_organization, throttle
from .chargebee_gateway import ChargebeeError, get_gateway
from .chargebee_snapshot import InvalidSnapshot
from .checkout import vendor_problem
from .errors import BillingProblem
from .invoices import apply_invoice
from .middleware import BillingContext
from .models import ACTIVE_STATUSES, OpenedPage, Organization, Subscription, grace_cutoff
from .money import format_money
from .opened_pages import first_return, record_page
from .payment_sources import apply_payment_source
from .signal_sending import send_after_commit
from .subscription_sync import apply_subscription

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PastDue:
    """What the banner says: how much failed, since when, and until when the subscription still works."""

    amount: str
    since: datetime | None
    grace_ends: datetime | None
    grace_used_up: bool


def past_due(subscription: Subscription | None) -> PastDue | None:
    """The subscription's dues, or None when it owes nothing (no query: all on the row)."""
    if subscription is None or not subscription.is_past_due:
        return None
    return PastDue(
        amount=format_money(subscription.total_dues, subscription.currency),
        since=subscription.due_since,
        grace_ends=subscription.grace_ends,
        grace_used_up=subscription.grace_used_up,
    )


def _app_url(route: str) -> str:
    return conf.get("APP_URL").rstrip("/") + reverse(route)


def _customer_id(organization: Organization) -> str:
    if not organization.chargebee_customer_id:
        raise BillingProblem(_("There is no billing account yet: subscribe first."), status=409)
    return organization.chargebee_customer_id


def pay_now(context: BillingContext | None) -> str:
    """The URL of Chargebee's page collecting every due invoice (single use: redirect to it, never store it)."""
    organization = authorize_reference(context, require_organization(context).pk, Action.PAY)
    customer_id = _customer_id(organization)
    throttle(context, organization)
    try:
        page = get_gateway().collect_now(customer_id=customer_id, redirect_url=_app_url("orgbilling:pay-return"))
    except ChargebeeError as exc:
        raise vendor_problem(exc) from exc
    record_page(context, OpenedPage.Kind.PAY, page["id"])
    return page["url"]


def update_payment_method(context: BillingContext | None) -> str:
    """The URL of Chargebee's ``manage_payment_sources`` page (single use, never stored)."""
    organization = authorize_reference(context, require_organization(context).pk, Action.PAYMENT_METHOD)
    customer_id = _customer_id(organization)
    throttle(context, organization)
    try:
        page = get_gateway().manage_payment_sources(
            customer_id=customer_id, redirect_url=_app_url("orgbilling:payment-method-return")
        )
    except ChargebeeError as exc:
        raise vendor_problem(exc) from exc
    record_page(context, OpenedPage.Kind.PAYMENT_METHOD, page["id"])
    return page["url"]


def _returned_page(context: BillingContext | None, kind: str, page_id: object) -> QuerySet[OpenedPage]:
    """The recorded page someone comes back from (none for an id this organization did not open)."""
    organization = authorize_reference(context, require_organization(context).pk, Action.SYNC)
    if not isinstance(page_id, str) or not organization.chargebee_customer_id:
        return OpenedPage.objects.none()
    return OpenedPage.objects.filter(vendor_id=page_id, kind=kind, organization=organization)


def _unreadable(exc: InvalidSnapshot) -> BillingProblem:
    logger.error("unreadable object from Chargebee after a hosted page: %s", exc)
    return BillingProblem(_("Chargebee sent something this site cannot read."), status=502)


def payment_method_return(context: BillingContext | None, page_id: object) -> bool:
    """Re-read the customer's payment sources (one list call) on the first return from a recorded page.

    False, with no Chargebee call, for any other visit (a refresh, an unknown
    page): the person still lands on /billing and webhooks bring the card.
    """
    with first_return(_returned_page(context, OpenedPage.Kind.PAYMENT_METHOD, page_id)) as first:
        if not first:
            return False
        customer_id = context.organization.chargebee_customer_id
        try:
            sources, _next = get_gateway().list_payment_sources_page(customer_id=customer_id)
        except ChargebeeError as exc:
            raise vendor_problem(exc) from exc
    try:
        with transaction.atomic():
            for source in sources:
                apply_payment_source(source)
    except InvalidSnapshot as exc:
        raise _unreadable(exc) from exc
    return True


def payment_return(context: BillingContext | None, page_id: object) -> bool:
    """Re-read the organization's subscriptions and invoices (two list calls) on the first return from a
    recorded collect_now page; False, with no Chargebee call, for any other visit (webhooks bring the result).
    """
    with first_return(_returned_page(context, OpenedPage.Kind.PAY, page_id)) as first:
        if not first:
            return False
        customer_id, gateway = context.organization.chargebee_customer_id, get_gateway()
        try:
            subscriptions, _next = gateway.list_subscriptions_page(customer_id=customer_id)
            invoices, _next = gateway.list_invoices_page(customer_id=customer_id)
        except ChargebeeError as exc:
            raise vendor_problem(exc) from exc
    try:
        with transaction.atomic():
            for entry in subscriptions:
                apply_subscription(entry["subscription"], entry.get("customer"))
            for invoice in invoices:
                apply_invoice(invoice)
    except InvalidSnapshot as exc:
        raise _unreadable(exc) from exc
    return True


def end_grace_periods(*, dry_run: bool = False) -> list[Subscription]:
    """Mark the subscriptions whose grace period ran out and send ``grace_period_ended`` once for each.

    Called by every ``orgbilling_sync`` run (no Chargebee call). ``dry_run``
    returns them without writing or sending anything.
    """
    with transaction.atomic():
        rows = list(
            Subscription.objects.locked(of=("self",))
            .select_related("organization")
            .filter(
                status__in=ACTIVE_STATUSES,
                due_invoices_count__gt=0,
                due_since__lte=grace_cutoff(),
                grace_period_ended_at__isnull=True,
            )
        )
        if dry_run:
            return rows
        now = timezone.now()
        for row in rows:
            row.grace_period_ended_at = now
            row.save(update_fields=["grace_period_ended_at", "updated_at"])
            send_after_commit(signals.grace_period_ended, Subscription, organization=row.organization, subscription=row)
    return rows
