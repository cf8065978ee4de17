"""The plan catalog offered on the billing page, read from settings.

Chargebee holds prices; this catalog only says which item prices an
organization may pick, under which name, with what trial and seat range, so
the page and the API can refuse a bad choice (400) before Chargebee is called.

``ORGBILLING_PLANS`` is a list of dicts with ``id`` (the Chargebee item price
id) and optionally ``name``, ``description``, ``trial_days``, ``min_seats`` and
``max_seats`` (defaults: the id, none, 14, 1 and 1000). Unset, it offers
``CHARGEBEE_PLAN_ITEM_PRICE_ID`` alone, named "Standard".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from . import conf

DEFAULT_PLAN = {"description": "", "trial_days": 14, "min_seats": 1, "max_seats": 1000}


class InvalidPlan(ValueError):
    """The requested plan or seat count is not on offer (a client error, answered with 400)."""


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    description: str
    trial_days: int
    min_seats: int
    max_seats: int


def _plan(entry: Any) -> Plan:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
        raise ImproperlyConfigured("Each ORGBILLING_PLANS entry must be a dict with a Chargebee item price `id`.")
    values = {**DEFAULT_PLAN, "name": entry["id"], **entry}
    try:
        plan = Plan(
            id=values["id"],
            name=str(values["name"]),
            description=str(values["description"]),
            trial_days=int(values["trial_days"]),
            min_seats=int(values["min_seats"]),
            max_seats=int(values["max_seats"]),
        )
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"ORGBILLING_PLANS entry {entry['id']!r}: numbers must be integers.") from None
    if plan.trial_days < 0 or not 1 <= plan.min_seats <= plan.max_seats:
        raise ImproperlyConfigured(f"ORGBILLING_PLANS entry {plan.id!r}: need trial_days >= 0, 1 <= min <= max.")
    return plan


def catalog() -> list[Plan]:
    """Every plan on offer, in the configured order (empty when nothing is configured)."""
    entries = conf.get("ORGBILLING_PLANS")
    if entries is None:
        item_price_id = conf.get("CHARGEBEE_PLAN_ITEM_PRICE_ID")
        entries = [{"id": item_price_id, "name": "Standard"}] if item_price_id else []
    return [_plan(entry) for entry in entries]


def find(plan_id: str) -> Plan | None:
    """The catalog plan with this item price id, for showing a subscription's plan name."""
    return next((plan for plan in catalog() if plan.id == plan_id), None)


def choose(plan_id: Any, seats: Any) -> tuple[Plan, int]:
    """Validate a client's choice; no plan id means the first plan, no seats its minimum.

    Raises ``InvalidPlan`` with a message fit to show the user.
    """
    plans = catalog()
    if not plans:
        raise InvalidPlan(_("No plan is available: the site's billing is not configured yet."))
    if plan_id in (None, ""):
        plan = plans[0]
    else:
        plan = next((candidate for candidate in plans if candidate.id == plan_id), None)
        if plan is None:
            raise InvalidPlan(_("Unknown plan."))
    if seats in (None, ""):
        return plan, plan.min_seats
    if isinstance(seats, bool) or not isinstance(seats, int | str):
        raise InvalidPlan(_("Seats must be a whole number."))
    try:
        count = int(seats)
    except ValueError:
        raise InvalidPlan(_("Seats must be a whole number.")) from None
    if not plan.min_seats <= count <= plan.max_seats:
        raise InvalidPlan(
            _("Seats must be between %(low)s and %(high)s for %(plan)s.")
            % {"low": plan.min_seats, "high": plan.max_seats, "plan": plan.name}
        )
    return plan, count
