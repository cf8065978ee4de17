"""The health summary for the admin index: ``{% load orgbilling_health %}{% orgbilling_health_summary %}``.

Read from local tables only (a page view never calls a vendor); the Chargebee
endpoint findings are those of the last ``manage.py orgbilling_health`` run.
"""

from __future__ import annotations

from django import template

from ..health import check

register = template.Library()


@register.inclusion_tag("admin/orgbilling/health_summary.html")
def orgbilling_health_summary() -> dict:
    return {"report": check(ask_chargebee=False)}
