"""The plans on offer: which Chargebee item prices the billing page sells (settings), at what price (the mirror).

``ORGBILLING_PLANS`` is a list of dicts with ``id`` (the Chargebee item price
id) and optionally ``name``, ``description``, ``min_seats`` and ``max_seats``
(defaults: the item price's external name, none, 1 and 1000); its order is the
page's. Unset, it offers ``CHARGEBEE_PLAN_ITEM_PRICE_ID`` alone. Prices,
periods, tiers and trial lengths come only from Chargebee, through the local
``ItemPrice`` mirror (``orgbilling.prices``), so an entry naming a price or a
trial is refused.

An offered price the mirror lacks (never synced, deleted) or that Chargebee
archived is not on offer: the page hides it, ``choose`` refuses it, and
``unavailable`` lists it for ``orgbilling_sync`` and the database check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from . import conf
from .models import ItemPrice

DEFAULT_PLAN = {"description": "", "min_seats": 1, "max_seats": 1000}
ALLOWED_KEYS = {"id", "name", *DEFAULT_PLAN}


class InvalidPlan(ValueError):
    """The requested plan or seat count is not on offer (a client error, answered with 400)."""


@dataclass(frozen=True)
class Plan:
    """An offered item price: the settings' entry, with the mirrored Chargebee price when it was looked up."""

    id: str
    name: str
    description: str
    min_seats: int
    max_seats: int
    price: ItemPrice | None = None
    configured: bool = True  # False: not (or no longer) in ORGBILLING_PLANS, shown for a subscription on it

    @property
    def currency(self) -> str:
        return self.price.currency if self.price else ""

    @property
    def available(self) -> bool:
        return self.configured and self.price is not None and self.price.is_available


def _plan(entry: Any) -> Plan:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
        raise ImproperlyConfigured("Each ORGBILLING_PLANS entry must be a dict with a Chargebee item price `id`.")
    unknown = sorted(set(entry) - ALLOWED_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"ORGBILLING_PLANS entry {entry['id']!r}: unknown key(s) {', '.join(unknown)}; an entry has "
            f"{', '.join(sorted(ALLOWED_KEYS))} (prices and trial lengths come from the Chargebee item price)."
        )
    values = {**DEFAULT_PLAN, "name": "", **entry}
    try:
        plan = Plan(
            id=values["id"],
            name=str(values["name"]),
            description=str(values["description"]),
            min_seats=int(values["min_seats"]),
            max_seats=int(values["max_seats"]),
        )
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"ORGBILLING_PLANS entry {entry['id']!r}: numbers must be integers.") from None
    if not 1 <= plan.min_seats <= plan.max_seats:
        raise ImproperlyConfigured(f"ORGBILLING_PLANS entry {plan.id!r}: need 1 <= min_seats <= max_seats.")
    return plan


def catalog() -> list[Plan]:
    """Every configured plan, in the configured order, without prices (no database read)."""
    entries = conf.get("ORGBILLING_PLANS")
    if entries is None:
        item_price_id = conf.get("CHARGEBEE_PLAN_ITEM_PRICE_ID")
        entries = [{"id": item_price_id}] if item_price_id else []
    return [_plan(entry) for entry in entries]


def find(plan_id: str) -> Plan | None:
    """The configured plan with this item price id (its name and seat range), without reading the database."""
    plan = next((plan for plan in catalog() if plan.id == plan_id), None)
    return replace(plan, name=plan.name or plan.id) if plan else None


def _priced(plan: Plan, price: ItemPrice | None) -> Plan:
    name = plan.name or (price.external_name if price else "") or plan.id
    description = plan.description or (price.description if price else "")
    return replace(plan, name=name, description=description, price=price)


def with_prices(extra_ids: Iterable[str] = ()) -> tuple[list[Plan], dict[str, Plan]]:
    """The configured plans with their mirrored prices, and ``extra_ids`` (a subscription's plans) too.

    One query however many prices the catalog holds. The second value maps
    each extra id to its plan, also when it is archived or no longer configured
    (a subscription on it still shows its name and price); unknown ids are left out.
    """
    configured = catalog()
    extra_ids = [price_id for price_id in extra_ids if price_id]
    wanted = {plan.id for plan in configured} | set(extra_ids)
    prices = ItemPrice.objects.in_bulk(list(wanted)) if wanted else {}
    plans = [_priced(plan, prices.get(plan.id)) for plan in configured]
    by_id = {plan.id: plan for plan in plans}
    extra = {}
    for price_id in extra_ids:
        if price_id in by_id:
            extra[price_id] = by_id[price_id]
        elif price_id in prices:
            price = prices[price_id]
            extra[price_id] = _priced(Plan(price_id, "", "", 1, DEFAULT_PLAN["max_seats"], configured=False), price)
    return plans, extra


def offered(currency: str = "") -> list[Plan]:
    """The plans on offer now (configured, mirrored, active in Chargebee), optionally in one currency only."""
    plans, _unused = with_prices()
    return [plan for plan in plans if plan.available and (not currency or plan.currency == currency.upper())]


def describe(plan_id: str) -> Plan | None:
    """A subscription's plan for display, with its price, even if archived or no longer offered."""
    return with_prices([plan_id])[1].get(plan_id)


def unavailable() -> list[tuple[str, str]]:
    """``(item price id, why)`` for each configured plan that is not on offer (missing or archived in Chargebee)."""
    problems = []
    for plan in with_prices()[0]:
        if plan.price is None:
            problems.append((plan.id, "missing from the local catalog (never synced, or not in Chargebee)"))
        elif plan.price.deleted_at is not None or plan.price.status == ItemPrice.Status.DELETED:
            problems.append((plan.id, "deleted in Chargebee"))
        elif not plan.price.is_available:
            problems.append((plan.id, f"{plan.price.status} in Chargebee"))
    return problems


def choose(plan_id: Any, seats: Any, *, currency: str = "") -> tuple[Plan, int]:
    """Validate a client's choice among the plans on offer; no plan id means the first, no seats its minimum.

    ``currency`` (a subscription's) limits the choice to prices in it: Chargebee
    cannot change a subscription's currency. Raises ``InvalidPlan`` with a
    message fit to show the user.
    """
    plans = offered(currency)
    if not plans:
        if currency and offered():
            raise InvalidPlan(_("No plan is offered in %(currency)s.") % {"currency": currency.upper()})
        raise InvalidPlan(_("No plan is available: the site's billing is not configured yet."))
    if plan_id in (None, ""):
        plan = plans[0]
    else:
        plan = next((candidate for candidate in plans if candidate.id == plan_id), None)
        if plan is None:
            if currency and any(candidate.id == plan_id for candidate in offered()):
                raise InvalidPlan(
                    _("This subscription is billed in %(currency)s: choose a plan in %(currency)s.")
                    % {"currency": currency.upper()}
                )
            raise InvalidPlan(_("Unknown plan, or no longer offered."))
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
