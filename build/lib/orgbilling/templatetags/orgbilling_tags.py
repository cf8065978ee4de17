"""Template helpers for gating app pages on billing: ``{% load orgbilling_tags %}``.

``{% if request|subscribed %}`` (any active plan) or ``{% if request|subscribed:"team-USD" %}``;
the value may also be an ``Organization`` or a ``BillingContext``.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest

from ..models import Organization

register = template.Library()


@register.filter
def subscribed(value: Any, plan_id: str | None = None) -> bool:
    """Whether the organization (of a request or billing context) has an active subscription."""
    if isinstance(value, HttpRequest):
        value = getattr(value, "billing", None)
    organization = getattr(value, "organization", value)
    return isinstance(organization, Organization) and organization.subscribed(plan_id or None)
