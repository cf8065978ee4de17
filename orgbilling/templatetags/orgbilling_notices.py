"""Template helpers for billing health: ``{% load orgbilling_notices %}``.

``{% billing_notices request %}`` renders the organization's notices (past due, card
expiring, ...) as a list of links to /billing, for a banner on every page of the host app
(one query); ``{{ invoice.total|money:invoice.currency }}`` writes an amount in minor units.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest

from ..models import Organization
from ..money import format_money
from ..notices import notices, with_profiles

register = template.Library()


@register.filter
def money(amount: int | None, currency: str = "USD") -> str:
    return format_money(amount or 0, currency)


@register.inclusion_tag("orgbilling/notices.html")
def billing_notices(value: Any) -> dict[str, Any]:
    """The notices of the organization of a request, a billing context or an organization."""
    if isinstance(value, HttpRequest):
        value = getattr(value, "billing", None)
    organization = getattr(value, "organization", value)
    if not isinstance(organization, Organization):
        return {"notices": []}
    listed = with_profiles(organization.subscriptions.order_by("-created_at"))
    return {"notices": notices(listed)}
