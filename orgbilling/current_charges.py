"""What the current subscription costs now and next, as the billing page says it, from local rows only.

* **Now**: seats x the unit price this subscription pays (its plan item's
  ``unit_price``, which outlives a price changed or archived since; else the
  mirrored ``ItemPrice``), per the price's period. The plan's name comes from
  the mirrored price, then the configured catalog, then its id, so a
  subscription on an archived price still shows its name and price.
* **Next**: Chargebee's renewal estimate stored on the row
  (``renewal_estimates``) with ``next_billing_at``, never worked out here
  from prices; "being updated" when the row changed since it was fetched.
  A subscription cancelling at its term end shows that date instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import plans
from .models import ItemPrice, Subscription
from .money import format_money
from .renewal_estimates import RENEWING_STATUSES, is_stale, needs_estimate
from .shown_dates import ShownDate, shown_date


@dataclass(frozen=True)
class CurrentCharges:
    plan_name: str
    seats: int
    unit_price: str  # "$12.00", or "" when neither the subscription nor the mirror knows it
    period: str  # "month", "3 months", or ""
    seats_text: str  # "3 × $12.00 per month", as much of it as is known
    next_amount: str  # "$36.00", or "" when no estimate was stored yet
    next_billing_at: ShownDate | None
    trial_ends: ShownDate | None  # while in trial
    period_ends: ShownDate | None
    renews: bool  # a next charge is due (renewing, and not cancelling at the term end)
    estimate_stale: bool  # the row changed since the stored estimate: shown as being updated
    estimate_pending: bool  # no estimate yet, one is on its way
    cancels_on: ShownDate | None  # the end of a scheduled cancellation
    cancellable: bool  # may be cancelled at the end of its term (active or in trial, linked, not cancelling)


def period_text(period: int | None, unit: str) -> str:
    """``1, "month"`` -> "month"; ``3, "month"`` -> "3 months" (to follow "per")."""
    count = period or 1
    if unit == "day":
        text = ngettext("day", "%(count)s days", count)
    elif unit == "week":
        text = ngettext("week", "%(count)s weeks", count)
    elif unit == "month":
        text = ngettext("month", "%(count)s months", count)
    elif unit == "year":
        text = ngettext("year", "%(count)s years", count)
    else:
        return ""
    return text % {"count": count}


def seats_text(seats: int, unit_price: str, period: str) -> str:
    """``3 × $12.00 per month``; without a period or a price, as much as is known."""
    if unit_price and period:
        return _("%(seats)s × %(price)s per %(period)s") % {"seats": seats, "price": unit_price, "period": period}
    if unit_price:
        return _("%(seats)s × %(price)s") % {"seats": seats, "price": unit_price}
    return str(seats)


def _plan_item(subscription: Subscription) -> dict:
    return next((item for item in subscription.items or [] if item.get("item_type") == "plan"), {})


UNREAD = object()  # describe()'s price: not read yet (None is read, and not mirrored)


def describe(subscription: Subscription | None, price: ItemPrice | None | object = UNREAD) -> CurrentCharges | None:
    """The current subscription's charges (one query: its plan's mirrored price, unless ``price`` is given).

    ``price``: the subscription's mirrored ``ItemPrice`` (None: not in the mirror) when the caller read it already,
    as the billing page's offer does with the catalog's, so the page reads prices once.
    """
    if subscription is None:
        return None
    if price is UNREAD:
        price = ItemPrice.objects.filter(pk=subscription.plan_id).first() if subscription.plan_id else None
    configured = plans.find(subscription.plan_id)
    # ORGBILLING_PLANS names the plans it offers; Chargebee's external name stands in for the others.
    name = (configured.name if configured and configured.name != configured.id else "") or (
        price.external_name if price else ""
    )
    name = name or subscription.plan_id
    currency = subscription.currency or (price.currency if price else "") or "USD"
    unit = _plan_item(subscription).get("unit_price")
    if unit is None and price is not None and price.pricing_model in ("per_unit", "flat_fee"):
        unit = price.price
    renews = subscription.status in RENEWING_STATUSES and not subscription.cancel_at_period_end
    cancels_on = None
    if subscription.cancel_at_period_end:
        cancels_on = subscription.cancelled_at or subscription.current_period_end
    amount = subscription.renewal_amount
    unit_price = format_money(unit, currency) if unit is not None else ""
    period = period_text(price.period, price.period_unit) if price else ""
    return CurrentCharges(
        plan_name=name or _("Unknown plan"),
        seats=subscription.seats,
        unit_price=unit_price,
        period=period,
        seats_text=seats_text(subscription.seats, unit_price, period),
        next_amount=format_money(amount, currency) if amount is not None else "",
        next_billing_at=shown_date(subscription.next_billing_at),
        trial_ends=shown_date(subscription.trial_end) if subscription.status == Subscription.Status.IN_TRIAL else None,
        period_ends=shown_date(subscription.current_period_end),
        renews=renews,
        estimate_stale=renews and is_stale(subscription),
        estimate_pending=renews and amount is None and needs_estimate(subscription),
        cancels_on=shown_date(cancels_on),
        cancellable=subscription.status in (Subscription.Status.ACTIVE, Subscription.Status.IN_TRIAL)
        and not subscription.cancel_at_period_end
        and bool(subscription.chargebee_subscription_id),
    )
