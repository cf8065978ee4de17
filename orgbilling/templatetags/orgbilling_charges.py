"""The current subscription's block of the billing page: ``{% load orgbilling_charges %}{% current_subscription %}``.

Renders ``orgbilling/current_subscription.html`` from local rows only (see
``current_charges``): plan, seats x unit price per period, trial end, the next
charge or the scheduled cancellation, and the billing managers' cancel and
keep controls.
"""

from __future__ import annotations

from typing import Any

from django import template

from ..current_charges import UNREAD, describe

register = template.Library()


@register.inclusion_tag("orgbilling/current_subscription.html", takes_context=True)
def current_subscription(context: template.Context) -> dict[str, Any]:
    subscription = context.get("subscription")
    # The billing page's offer read the subscription's price with the catalog's (offers.build_offer): reuse it.
    plan = getattr(context.get("offer"), "current_plan", None)
    price = plan.price if subscription is not None and plan is not None and plan.id == subscription.plan_id else UNREAD
    return {
        "subscription": subscription,
        "charges": describe(subscription, price),
        "can_manage": context.get("can_manage", False),
        "organization": context.get("organization"),
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }
