"""Previewed plan and seat changes in the fake Chargebee: estimates, update_for_items, scheduled changes.

`ChangesMixin` is mixed into `FakeChargebee` before the invoicing mixin. `ROUTES` adds
`POST /estimates/update_subscription_for_items`, `POST /subscriptions/{id}/update_for_items` and
`POST /subscriptions/{id}/remove_scheduled_changes` to the fake's route table.

Amounts follow the parameters as Chargebee's do, so a preview made with other parameters than the
change shows another price: `prorate=true` charges (or credits) the remaining fraction of the term
as of the fake's clock, `prorate=false` a whole term; `invoice_immediately=true` invoices the charge
now, `false` leaves it for the next invoice; `end_of_term=true` changes nothing now and schedules
the new items for the term's end (`has_scheduled_changes`), when `renew_now` applies them.

Prices are the item prices' (`PricesMixin`: per unit, flat fee or tiers), else the subscription items' own.
Knobs for the sandbox console and tests: `decline_next_change(keep_change=...)` makes the next change
that charges a card fail with Chargebee's `payment_processing_failed` (with the change kept and its
invoice left unpaid, or nothing changed), `require_authentication_next_change()` answers that the
payment needs the customer's 3-D Secure authentication (nothing changed). The existing
`fail_next_charge()` knob declines a change's charge too (change kept, invoice unpaid).
Shapes follow Chargebee's estimate, invoice_estimate, credit_note_estimate and line_item objects
(API v2; the field lists of chargebee-python 3.x's models).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.fake_chargebee_renewals import renewal_line_items
from sandbox.fake_chargebee_store import (
    Body,
    ChargebeeApiError,
    Store,
    add_month,
    invalid_state,
    merge_items,
    new_id,
    param_required,
    param_wrong_value,
)

DECLINE_KNOB = "decline_next_change"
AUTHENTICATION_KNOB = "authenticate_next_change"


class PaymentDeclined(ChargebeeApiError):
    """Chargebee's payment_processing_failed, as its API docs show it (tests/fixtures/chargebee/errors/)."""

    def __init__(self, amount: int, currency: str, cause: str, reason: str) -> None:
        super().__init__(
            400,
            "payment_processing_failed",
            f"Subscription cannot be updated as we are not able to collect {currency} {amount / 100:,.2f} from "
            f"your card on file. Error message: {reason}",
            error_type="payment",
        )
        self.cause = cause

    def body(self) -> Body:
        return {**super().body(), "error_cause_id": self.cause}


class ChangesMixin:
    """What Chargebee does with subscription changes; `store`, `_changes`, ... come from `ChargebeeState`."""

    store: Store
    _record: Callable[..., None]
    _changes: Callable[..., Any]
    _live_subscription: Callable[..., Body]
    _save_change: Callable[..., Body]
    _take_failure: Callable[[], bool]
    _due_invoices: Callable[..., list[Body]]
    item: Callable[..., Body]
    with_customer: Callable[[Body], Body]

    # ----- knobs and clock ---------------------------------------------------------------------------

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Tell the fake what time it is (proration counts the term's remaining fraction by this clock)."""
        self.store._clock = clock

    def advance_clock(self, seconds: float) -> None:
        """Move the fake's time forward (the sandbox console's "days later"), from whatever clock it has."""
        current = self.store._clock
        self.set_clock(lambda: current() + seconds)

    def decline_next_change(self, keep_change: bool = False) -> None:
        """The next change that charges a card is declined; with `keep_change` the change stays, invoice unpaid."""
        self.store.put("knob", {"id": DECLINE_KNOB, "on": True, "keep_change": keep_change})

    def require_authentication_next_change(self) -> None:
        """The next change that charges a card needs the customer's 3-D Secure authentication (nothing changes)."""
        self.store.put("knob", {"id": AUTHENTICATION_KNOB, "on": True})

    def scheduled_change(self, sub_id: str) -> Body | None:
        """The items a change with end_of_term=true will set at the term's end, if any."""
        return self.store.get("scheduled_change", sub_id)

    # ----- simulation API --------------------------------------------------------------------------------

    def estimate_change(self, sub_id: str, items: list[Body], options: Body) -> Body:
        """What `update_for_items` with these items and options would do now (nothing is stored)."""
        with self.store.transaction():
            sub = self._live_subscription(sub_id, param="subscription[id]")
            return self._estimate(sub, items, options)

    def update_for_items(self, sub_id: str, items: list[Body], options: Body) -> Body:
        """Change the subscription's items now (charging the prorated difference) or at the term's end."""
        with self.store.transaction():  # a knob is used up even when the change then fails
            charge = self._estimate(self._live_subscription(sub_id), items, options).get("invoice_estimate")
            failure = self._payment_failure(charge) if charge and charge["amount_due"] > 0 else None
        if failure is not None and not getattr(failure, "keep_change", False):
            raise failure
        with self._changes() as events:
            sub = self._live_subscription(sub_id)
            estimate = self._estimate(sub, items, options)
            if options["end_of_term"]:
                self.store.put("scheduled_change", {"id": sub_id, "items": _new_items(sub, items)})
                sub["has_scheduled_changes"] = True
                self._save_change(events, sub, "subscription_changes_scheduled", "api")
                return self.with_customer(sub)
            sub.update(subscription_items=_new_items(sub, items), has_scheduled_changes=False)
            self.store.delete("scheduled_change", sub_id)
            self._save_change(events, sub, "subscription_changed", "api")
            answer: Body = {}
            if charge := estimate.get("invoice_estimate"):
                answer["invoice"] = self._change_invoice(events, sub, charge, unpaid=failure is not None)
            notes = estimate["credit_note_estimates"]
            if notes:
                answer["credit_notes"] = [_credit_note(sub, note, self.store.now()) for note in notes]
            answer.update(self.with_customer(self.store.require("subscription", sub_id)))
        if failure is not None:
            raise failure  # the change was kept (committed above) with its invoice unpaid, as Chargebee may do
        return answer

    def remove_scheduled_changes(self, sub_id: str) -> Body:
        with self._changes() as events:
            sub = self._live_subscription(sub_id)
            if not sub.get("has_scheduled_changes"):
                raise invalid_state(f"Subscription {sub_id} has no scheduled changes")
            self.store.delete("scheduled_change", sub_id)
            sub["has_scheduled_changes"] = False
            return self.with_customer(self._save_change(events, sub, "subscription_scheduled_changes_removed", "api"))

    def renew_now(self, sub_id: str) -> Body:
        """Apply the scheduled change first (as Chargebee does at the term's end), then renew."""
        scheduled = self.store.get("scheduled_change", sub_id)
        if scheduled is not None:
            with self._changes() as events:
                sub = self._live_subscription(sub_id)
                sub.update(subscription_items=scheduled["items"], has_scheduled_changes=False)
                self.store.delete("scheduled_change", sub_id)
                self._save_change(events, sub, "subscription_changed", "scheduled_job")
        return super().renew_now(sub_id)  # type: ignore[misc]

    def renewal_estimate(self, sub_id: str) -> Body:
        """Chargebee's renewal estimate counts a scheduled change (its `ignore_scheduled_changes` is false)."""
        estimate = super().renewal_estimate(sub_id)  # type: ignore[misc]
        scheduled = self.store.get("scheduled_change", sub_id)
        invoice = estimate.get("invoice_estimate")
        if scheduled is not None and invoice and invoice["line_items"]:
            starts_at = invoice["line_items"][0]["date_from"]
            sub = dict(self.store.require("subscription", sub_id), subscription_items=scheduled["items"])
            lines = renewal_line_items(sub, starts_at)
            total = sum(line["amount"] for line in lines)
            invoice.update(line_items=lines, sub_total=total, total=total, amount_due=total)
        return estimate

    # ----- the arithmetic ----------------------------------------------------------------------------

    def _estimate(self, sub: Body, items: list[Body], options: Body) -> Body:
        now = self.store.now()
        new_items = [self._described(item) for item in _new_items(sub, items)]
        start, end = sub.get("current_term_start") or now, sub.get("current_term_end") or add_month(now)
        fraction = (max(0, end - now), max(1, end - start)) if options["prorate"] else (1, 1)
        currency = sub.get("currency_code") or "USD"
        lines, credits = [], []
        if not options["end_of_term"] and sub["status"] == "active":
            old = {item["item_price_id"]: item for item in sub["subscription_items"]}
            for item in new_items:
                before = old.pop(item["item_price_id"], None)
                seats = abs(item["quantity"] - (before["quantity"] if before else 0))
                difference = item["amount"] - (before["amount"] if before else 0)
                if difference > 0:
                    lines.append(_line(sub, item, seats, difference, fraction, now, end))
                elif difference < 0:
                    credits.append(_line(sub, item, seats, -difference, fraction, now, end))
            credits += [_line(sub, item, item["quantity"], item["amount"], fraction, now, end) for item in old.values()]
        credit_notes = [_credit_note_estimate(sub, credits, currency)] if credits else []
        credit_total = sum(line["amount"] for line in credits)
        estimate: Body = {
            "created_at": now,
            "object": "estimate",
            "subscription_estimate": {
                "id": sub["id"],
                "status": sub["status"],
                "next_billing_at": sub.get("next_billing_at"),
                "currency_code": currency,
                "object": "subscription_estimate",
            },
            "credit_note_estimates": credit_notes,
        }
        renewal = [
            _line(sub, item, item["quantity"], item["amount"], (1, 1), end, add_month(end)) for item in new_items
        ]  # noqa: E501
        if options["invoice_immediately"] and lines:
            estimate["invoice_estimate"] = _invoice_estimate(sub, lines, currency, credit_total, now)
            credit_notes[:] = [dict(note, amount_allocated=min(note["total"], _sum(lines))) for note in credit_notes]
        elif lines:
            renewal = lines + renewal  # not invoiced now: the charge waits for the next invoice
        if sub.get("next_billing_at"):
            estimate["next_invoice_estimate"] = _invoice_estimate(sub, renewal, currency, 0, sub["next_billing_at"])
        return estimate

    def _described(self, item: Body) -> Body:
        """The item with its item price's external name, which Chargebee writes as the line's description."""
        stored = self.store.get("item_price", item["item_price_id"]) or {}
        return dict(item, description=stored.get("external_name") or item["item_price_id"])

    def _payment_failure(self, charge: Body) -> ChargebeeApiError | None:
        amount, currency = charge["amount_due"], charge["currency_code"]
        knob = self.store.get("knob", AUTHENTICATION_KNOB)
        if knob and knob["on"]:
            self.store.put("knob", {"id": AUTHENTICATION_KNOB, "on": False})
            return PaymentDeclined(
                amount,
                currency,
                "gateway.authentication.required",
                "(authentication_required) The card requires 3-D Secure authentication.",
            )
        knob = self.store.get("knob", DECLINE_KNOB)
        keep = False
        if knob and knob["on"]:
            self.store.put("knob", {"id": DECLINE_KNOB, "on": False})
            keep = knob.get("keep_change", False)
        elif self._take_failure():
            keep = True
        else:
            return None
        error = PaymentDeclined(amount, currency, "gateway.general.decline", "(card_declined) Your card was declined.")
        error.keep_change = keep  # type: ignore[attr-defined]
        return error

    def _change_invoice(self, events: list[Body], sub: Body, charge: Body, unpaid: bool) -> Body:
        now = self.store.now()
        invoice = {
            **{key: charge[key] for key in ("sub_total", "total", "currency_code", "line_items")},
            "id": new_id("inv_"),
            "customer_id": sub["customer_id"],
            "subscription_id": sub["id"],
            "recurring": True,
            "status": "paid",
            "date": now,
            "due_date": now,
            "credits_applied": charge["credits_applied"],
            "amount_paid": charge["amount_due"],
            "amount_due": 0,
            "paid_at": now,
            "deleted": False,
            "object": "invoice",
        }
        customer = self.store.require("customer", sub["customer_id"])
        if unpaid:
            invoice.update(status="payment_due", amount_paid=0, amount_due=charge["amount_due"], paid_at=None)
            invoice.update(dunning_status="in_progress")
            dues = self._due_invoices(sub["customer_id"], sub["id"]) + [invoice]
            sub.update(
                due_invoices_count=len(dues),
                due_since=min(due["date"] for due in dues),
                total_dues=sum(due["amount_due"] for due in dues),
            )
            self.store.put("subscription", self.store.touch(sub))
        self.store.put("invoice", self.store.touch(invoice))
        self._record(events, "invoice_generated", "api", invoice=invoice, customer=customer)
        outcome = "payment_failed" if unpaid else "payment_succeeded"
        self._record(events, outcome, "api", invoice=invoice, customer=customer, subscription=sub)
        return invoice

    # ----- API handlers (request: the fake's parsed request) ----------------------------------------------

    def _estimate_update_for_items(self, request: Any) -> Body:
        sub_id = request.params.get("subscription[id]")
        if not sub_id:
            raise param_required("subscription[id]")
        items, options = self._change_request(request.params)
        return {"estimate": self.estimate_change(sub_id, items, options)}

    def _update_for_items(self, request: Any, sub_id: str) -> Body:
        items, options = self._change_request(request.params)
        return self.update_for_items(sub_id, items, options)

    def _remove_scheduled_changes(self, request: Any, sub_id: str) -> Body:
        return self.remove_scheduled_changes(sub_id)

    def _change_request(self, params: dict[str, str]) -> tuple[list[Body], Body]:
        items = []
        index = 0
        while f"subscription_items[item_price_id][{index}]" in params:
            param = f"subscription_items[item_price_id][{index}]"
            quantity = _number(params.get(f"subscription_items[quantity][{index}]"), index)
            items.append(self.item(params[param], index, quantity, None, param))
            index += 1
        if not items:
            raise param_required("subscription_items[item_price_id][0]")
        options = {name: _flag(params, name) for name in ("prorate", "end_of_term", "invoice_immediately")}
        if options["end_of_term"] and options["invoice_immediately"]:
            raise param_wrong_value("invoice_immediately", "cannot be set for a change at the end of the term")
        return items, options


# ----- shapes ----------------------------------------------------------------------------------------


def _new_items(sub: Body, changes: list[Body]) -> list[Body]:
    """Items after the change: a new plan item replaces the plan, others are updated by item price id.

    Each keeps the `amount` a term its item price gives (per unit, flat, or from the tiers).
    """
    return [dict(item) for item in merge_items(sub["subscription_items"], changes, replace=False)]


def _line(
    sub: Body, item: Body, quantity: int, term_amount: int, fraction: tuple[int, int], date_from: int, date_to: int
) -> Body:
    """A line charging (or crediting) `term_amount` a term, for the `fraction` of it that is left."""
    amount = term_amount * fraction[0] // fraction[1]
    return {
        "id": new_id("li_"),
        "subscription_id": sub["id"],
        "date_from": date_from,
        "date_to": date_to,
        "unit_amount": item["unit_price"],
        "quantity": quantity,
        "amount": amount,
        "pricing_model": "per_unit",
        "is_taxed": False,
        "tax_amount": 0,
        "discount_amount": 0,
        "item_level_discount_amount": 0,
        "description": item.get("description") or item["item_price_id"],
        "entity_type": f"{item['item_type']}_item_price",
        "entity_id": item["item_price_id"],
        "customer_id": sub["customer_id"],
        "object": "line_item",
    }


def _sum(lines: list[Body]) -> int:
    return sum(line["amount"] for line in lines)


def _invoice_estimate(sub: Body, lines: list[Body], currency: str, credits: int, date: int) -> Body:
    total = _sum(lines)
    applied = min(credits, total)
    return {
        "recurring": True,
        "price_type": "tax_exclusive",
        "currency_code": currency,
        "sub_total": total,
        "total": total,
        "credits_applied": applied,
        "amount_paid": 0,
        "amount_due": total - applied,
        "line_items": lines,
        "taxes": [],
        "line_item_taxes": [],
        "line_item_discounts": [],
        "round_off_amount": 0,
        "customer_id": sub["customer_id"],
        "object": "invoice_estimate",
    }


def _credit_note_estimate(sub: Body, lines: list[Body], currency: str) -> Body:
    total = _sum(lines)
    return {
        "reference_invoice_id": None,
        "type": "adjustment",
        "price_type": "tax_exclusive",
        "currency_code": currency,
        "sub_total": total,
        "total": total,
        "amount_allocated": 0,
        "amount_available": total,
        "line_items": lines,
        "taxes": [],
        "round_off_amount": 0,
        "customer_id": sub["customer_id"],
        "object": "credit_note_estimate",
    }


def _credit_note(sub: Body, estimate: Body, now: int) -> Body:
    return {
        "id": new_id("cn_"),
        "customer_id": sub["customer_id"],
        "subscription_id": sub["id"],
        "type": estimate["type"],
        "reason_code": "subscription_change",
        "status": "adjusted",
        "total": estimate["total"],
        "amount_allocated": estimate["amount_allocated"],
        "amount_available": estimate["total"] - estimate["amount_allocated"],
        "currency_code": estimate["currency_code"],
        "date": now,
        "object": "credit_note",
    }


def _flag(params: dict[str, str], name: str) -> bool:
    value = (params.get(name) or "false").lower()
    if value not in ("true", "false"):
        raise param_wrong_value(name, "must be true or false")
    return value == "true"


def _number(value: str | None, index: int) -> int:
    param = f"subscription_items[quantity][{index}]"
    try:
        quantity = 1 if value in (None, "") else int(value)
    except ValueError:
        raise param_wrong_value(param, "must be an integer") from None
    if quantity < 1:
        raise param_wrong_value(param, "cannot be less than 1")
    return quantity


ROUTES: list[tuple[str, str, Callable[..., Body]]] = [
    ("POST", r"/estimates/update_subscription_for_items", ChangesMixin._estimate_update_for_items),
    ("POST", r"/subscriptions/([^/]+)/update_for_items", ChangesMixin._update_for_items),
    ("POST", r"/subscriptions/([^/]+)/remove_scheduled_changes", ChangesMixin._remove_scheduled_changes),
]
