"""What the billing page offers one organization: plan cards in its money, grouped, with a period switch.

Built from local rows only (``plans.with_prices``: one query however large the
catalog), so a page view never calls Chargebee:

* An organization with a subscription sees only prices in that subscription's
  currency (Chargebee cannot change it); one without sees every offered
  currency, each in its own group.
* When one Chargebee item (``item_id``) is sold both monthly and yearly, the
  page gets a month/year switch (``?period=year``: plain links, no script) and
  each yearly card says what it saves against twelve months.
* A trial is shown only to an organization that never had one (checkout gives
  it none either).
* The subscription's own plan is described even when archived or no longer
  offered; the forms offer only plans on offer.

``/api/plans`` returns the same cards as JSON (amounts in minor units beside
the formatted strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from babel.numbers import get_currency_name
from django.utils import translation
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .models import ItemPrice, Organization, Subscription
from .money import format_money
from .plans import Plan, with_prices

PERIODS = ("month", "year")


def period_text(price: ItemPrice) -> str:
    """``per month``, ``every 3 months``, ``per year``... (one catalog look-up: a page has a card per price)."""
    count, unit = price.period, price.period_unit
    if unit == "day":
        text = ngettext("per day", "every %(count)s days", count)
    elif unit == "week":
        text = ngettext("per week", "every %(count)s weeks", count)
    elif unit == "month":
        text = ngettext("per month", "every %(count)s months", count)
    elif unit == "year":
        text = ngettext("per year", "every %(count)s years", count)
    else:
        text = unit
    return text % {"count": count}


def trial_text(price: ItemPrice) -> str:
    if not price.trial_period:
        return ""
    if price.trial_period_unit == "month":
        text = ngettext("%(count)s-month free trial", "%(count)s-month free trial", price.trial_period)
    else:
        text = ngettext("%(count)s-day free trial", "%(count)s-day free trial", price.trial_period)
    return text % {"count": price.trial_period}


@dataclass(frozen=True)
class Tier:
    first: int
    last: int | None  # None: and more
    amount: int
    text: str

    @property
    def seats(self) -> str:
        if self.last is None:
            return _("%(first)s or more") % {"first": self.first}
        return _("%(first)s to %(last)s") % {"first": self.first, "last": self.last}


@dataclass(frozen=True)
class Card:
    """One offered price as the page shows it."""

    plan: Plan
    amount_text: str  # "$15.00"; "" for tiered models
    per_seat: bool
    period: str
    tiers: list[Tier] = field(default_factory=list)
    trial: str = ""
    saving: int | None = None  # minor units saved a year against twelve monthly payments
    saving_percent: int | None = None
    current: bool = False

    @property
    def price(self) -> ItemPrice:
        return self.plan.price

    @property
    def tiers_per_seat(self) -> bool:
        return self.price.pricing_model != "stairstep"

    @property
    def summary(self) -> str:
        """One line: ``$15.00 per seat per month``, ``from $20.00 per seat per month`` (tiers)."""
        period = self.period  # period_text(self.price), worked out once when the card was made
        if self.tiers:
            lowest = min(self.tiers, key=lambda tier: tier.amount)
            if not self.tiers_per_seat:
                return _("from %(amount)s %(period)s") % {"amount": lowest.text, "period": period}
            return _("from %(amount)s per seat %(period)s") % {"amount": lowest.text, "period": period}
        if self.per_seat:
            return _("%(amount)s per seat %(period)s") % {"amount": self.amount_text, "period": period}
        return _("%(amount)s %(period)s") % {"amount": self.amount_text, "period": period}

    @property
    def anchor(self) -> str:
        """The card heading's id: ``ob-plan-`` and the price id, slugified."""
        return _anchor(self.plan.id)

    @property
    def price_text(self) -> str:
        """What follows the amount on a card: ``per seat per month`` (or just the period for a flat fee)."""
        if self.per_seat:
            return _("per seat %(period)s") % {"period": self.period}
        return self.period

    @property
    def tiers_caption(self) -> str:
        if self.tiers_per_seat:
            return _("Price per seat %(period)s, by number of seats") % {"period": self.period}
        return _("Price %(period)s, by number of seats") % {"period": self.period}

    @property
    def seats_text(self) -> str:
        """``1 to 1000 seats.``, and the trial when one is offered."""
        text = _("%(low)s to %(high)s seats.") % {"low": self.plan.min_seats, "high": self.plan.max_seats}
        if self.trial:
            text += " " + _("%(trial)s for new customers.") % {"trial": self.trial}
        return text

    @property
    def label(self) -> str:
        """The plan as a form's option names it."""
        return f"{self.plan.name} · {self.summary}"

    @property
    def saving_text(self) -> str:
        if not self.saving:
            return ""
        return _("Save %(percent)s%% (%(amount)s a year) against monthly billing.") % {
            "percent": self.saving_percent,
            "amount": format_money(self.saving, self.price.currency),
        }

    def shown(self) -> dict[str, Any]:
        """The card as the page's template reads it: every text worked out once, in plain values.

        A page may show dozens of cards; the template engine resolves a dict key far faster than a property of a
        nested object, and each of these texts is read once.
        """
        return {
            "anchor": self.anchor,
            "name": self.plan.name,
            "description": self.plan.description,
            "current": self.current,
            "amount_text": self.amount_text,
            "price_text": self.price_text,
            "tiers": [{"seats": tier.seats, "text": tier.text} for tier in self.tiers],
            "tiers_caption": self.tiers_caption if self.tiers else "",
            "saving_text": self.saving_text,
            "seats_text": self.seats_text,
        }

    def as_json(self) -> dict:
        price = self.price
        return {
            "id": self.plan.id,
            "name": self.plan.name,
            "description": self.plan.description,
            "itemId": price.item_id,
            "currency": price.currency,
            "pricingModel": price.pricing_model,
            "price": None if self.tiers else price.price,
            "priceFormatted": self.amount_text or None,
            "perSeat": self.per_seat,
            "period": price.period,
            "periodUnit": price.period_unit,
            "periodLabel": self.period,
            "summary": self.summary,
            "tiers": [
                {"startingUnit": t.first, "endingUnit": t.last, "price": t.amount, "priceFormatted": t.text}
                for t in self.tiers
            ],
            "trial": (
                {"period": price.trial_period, "unit": price.trial_period_unit, "label": self.trial}
                if self.trial
                else None
            ),
            "yearlySaving": (
                {
                    "amount": self.saving,
                    "amountFormatted": format_money(self.saving, price.currency),
                    "percent": self.saving_percent,
                }
                if self.saving
                else None
            ),
            "minSeats": self.plan.min_seats,
            "maxSeats": self.plan.max_seats,
            "available": self.plan.available,
            "current": self.current,
        }


@lru_cache(maxsize=1024)
def _anchor(price_id: str) -> str:
    return f"ob-plan-{slugify(price_id)}"  # slugify is slow, and the ids are few: the catalog's item prices


@dataclass(frozen=True)
class Group:
    currency: str
    cards: list[Card]

    @property
    def name(self) -> str:
        """``US dollars (USD)`` in the active language."""
        locale = translation.to_locale(translation.get_language() or "en-us")
        try:
            name = get_currency_name(self.currency, count=2, locale=locale)
        except (ValueError, LookupError):
            name = self.currency
        return f"{name} ({self.currency})"


@dataclass(frozen=True)
class PeriodLink:
    value: str
    label: str
    selected: bool


@dataclass(frozen=True)
class Offer:
    groups: list[Group]  # the cards shown, for the chosen period
    choices: list[Card]  # every plan a form may pick (both periods), in the allowed currency
    periods: list[str]  # ["month", "year"] when the switch applies, else []
    period: str
    current: Card | None  # the subscription's plan and price, also when no longer offered
    currency: str  # the subscription's ("" without one)
    current_plan: Plan | None = None  # its name and seats, also when its price was never mirrored

    @property
    def several_currencies(self) -> bool:
        return len(self.groups) > 1

    @property
    def period_links(self) -> list[PeriodLink]:
        labels = {"month": _("Monthly"), "year": _("Yearly")}
        return [PeriodLink(value, labels[value], value == self.period) for value in self.periods]

    @property
    def plans(self) -> list[Plan]:
        return [card.plan for card in self.choices]

    @cached_property
    def options(self) -> list[dict[str, Any]]:
        """The forms' plan options (``id``, ``label``, ``current``: the subscription's plan is selected)."""
        return [{"id": card.plan.id, "label": card.label, "current": card.current} for card in self.choices]

    @cached_property
    def shown_groups(self) -> list[dict[str, Any]]:
        """The groups of cards as the page shows them (``Card.shown``), with each currency's name."""
        return [
            {"currency": group.currency, "name": group.name, "cards": [card.shown() for card in group.cards]}
            for group in self.groups
        ]


def _card(plan: Plan, *, show_trial: bool, current_id: str) -> Card:
    price = plan.price
    currency = price.currency
    tiers = []
    if price.pricing_model in ("tiered", "volume", "stairstep"):
        tiers = [
            Tier(tier["starting_unit"], tier.get("ending_unit"), tier["price"], format_money(tier["price"], currency))
            for tier in price.tiers
        ]
    amount = "" if tiers else format_money(price.price or 0, currency)
    return Card(
        plan=plan,
        amount_text=amount,
        per_seat=price.pricing_model != "flat_fee",
        period=period_text(price),
        tiers=tiers,
        trial=trial_text(price) if show_trial else "",
        current=plan.id == current_id,
    )


def _with_saving(card: Card, monthly: Card | None) -> Card:
    """A yearly per-seat or flat price against twelve payments of the same item's monthly one."""
    price = card.price
    if monthly is None or card.tiers or monthly.tiers or price.pricing_model != monthly.price.pricing_model:
        return card
    twelve = (monthly.price.price or 0) * 12
    saving = twelve - (price.price or 0)
    if twelve <= 0 or saving <= 0:
        return card
    percent = (saving * 200 + twelve) // (twelve * 2)  # rounded half up, in whole percent
    return Card(**{**card.__dict__, "saving": saving, "saving_percent": percent})


def _yearly(price: ItemPrice) -> bool:
    return price.period_unit == "year" and price.period == 1


def _monthly(price: ItemPrice) -> bool:
    return price.period_unit == "month" and price.period == 1


def build_offer(
    organization: Organization, subscription: Subscription | None, period: str | None = None, *, had_trial: bool
) -> Offer:
    """The cards and choices for this organization; ``period`` is the switch's ``?period=`` (month by default)."""
    current_id = subscription.plan_id if subscription else ""
    configured, extra = with_prices([current_id])
    current_plan = extra.get(current_id)
    currency = ""
    if subscription is not None:
        currency = (subscription.currency or (current_plan.currency if current_plan else "")).upper()
    on_offer = [plan for plan in configured if plan.available and (not currency or plan.currency == currency)]
    show_trial = subscription is None and not had_trial
    cards = [_card(plan, show_trial=show_trial, current_id=current_id) for plan in on_offer]

    monthly = {(c.price.item_id, c.price.currency): c for c in cards if _monthly(c.price) and c.price.item_id}
    cards = [
        _with_saving(c, monthly.get((c.price.item_id, c.price.currency))) if _yearly(c.price) else c for c in cards
    ]
    yearly = {(c.price.item_id, c.price.currency) for c in cards if _yearly(c.price)}
    both = monthly.keys() & yearly
    periods = list(PERIODS) if both else []
    chosen = period if period in periods else "month"
    shown = cards
    if periods:
        # A priced item in both periods shows the chosen one; a price sold in one period only always shows.
        def visible(card: Card) -> bool:
            key = (card.price.item_id, card.price.currency)
            if key not in both or not (_monthly(card.price) or _yearly(card.price)):
                return True
            return card.price.period_unit == chosen

        shown = [card for card in cards if visible(card)]
    groups: dict[str, list[Card]] = {}
    for card in shown:
        groups.setdefault(card.price.currency, []).append(card)
    current = None
    if current_plan is not None and current_plan.price is not None:
        current = next((card for card in cards if card.plan.id == current_id), None)
        current = current or _card(current_plan, show_trial=False, current_id=current_id)
    return Offer(
        groups=[Group(code, group) for code, group in groups.items()],
        choices=cards,
        periods=periods,
        period=chosen,
        current=current,
        currency=currency,
        current_plan=current_plan,
    )
