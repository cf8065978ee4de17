"""Plan and seat changes, previewed then confirmed (issue 15 item 4).

Plain functions with plain arguments, called by the JSON API and the pages and tested directly.

* ``preview_change``: authorize (billing managers of the session's organization), validate the
  plan and seats, apply the seat floor, count one unit of the throttle, then one Chargebee call
  (``POST /estimates/update_subscription_for_items``) with exactly the parameters the change will
  use (``chargebee_gateway.change_params``: an increase is prorated and invoiced now, a decrease or
  downgrade waits for the term's end). The estimate is kept as a ``ChangePreview``.
* ``confirm_change``: not throttled again. The preview is claimed in a short transaction (rule 2:
  the intent is committed before the call) and applied with one call
  (``POST /subscriptions/{id}/update_for_items``) under the preview's own idempotency key, so a
  repeated confirm changes once; the returned subscription goes through ``apply_subscription`` and
  is shown at once. A preview older than ``PREVIEW_LIFETIME``, or made at another
  ``resource_version`` of the subscription than the one stored now, is refused with 409 and a fresh
  preview (``PreviewStale``), and nothing is charged. When the change charges now and the card on file
  is not ``valid`` or ``expiring``, or Chargebee answers that the payment needs the customer
  (3-D Secure), Chargebee's hosted ``checkout_existing_for_items`` page takes over. After a decline or
  another refusal the subscription is re-read from Chargebee and the message says whether the change
  was made (with an unpaid invoice) or not.
* ``undo_scheduled_change``: ``POST /subscriptions/{id}/remove_scheduled_changes`` (one call, throttled), then
  the renewal estimate without the change (``renewal_estimates.refresh_after_change``: a second call inline).

A confirmed change stores the preview's next-invoice amount as the subscription's renewal estimate for the version
it applied (``renewal_estimates``' columns and ordering), so confirming needs no call for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from . import audit, plans, renewal_estimates
from .authorization import Action, authorize_reference, require_organization, throttle
from .chargebee_gateway import ChargebeeError, ChargebeeGateway, change_params, get_gateway
from .chargebee_snapshot import InvalidSnapshot
from .checkout import LIVE, current_subscription, open_change_page, vendor_problem
from .errors import BillingProblem, NotFound
from .middleware import BillingContext
from .models import BillingProfile, ChangePreview, ItemPrice, Organization, Subscription
from .money import format_money
from .seat_counts import check_seat_floor
from .subscription_sync import apply_subscription

logger = logging.getLogger(__name__)

PREVIEW_LIFETIME = timedelta(minutes=10)
CARD_USABLE = ("valid", "expiring")  # the customer's card_status values a change may be charged to
MAX_AMOUNT = 2**63 - 1
State = ChangePreview.State


class Outcome(StrEnum):
    APPLIED = "applied"  # changed now (and charged, when it costs something)
    SCHEDULED = "scheduled"  # waits for the term's end
    HOSTED = "hosted"  # the customer pays on Chargebee's page (``url``)
    DECLINED = "declined"  # the payment failed; ``changed`` says whether Chargebee kept the change
    REFUSED = "refused"  # Chargebee refused the change; ``changed`` likewise


@dataclass(frozen=True)
class ChangeResult:
    outcome: Outcome
    preview: ChangePreview
    subscription: Subscription
    message: str
    changed: bool
    url: str = ""  # the hosted page, for HOSTED only: used at once, never stored or logged


class PreviewStale(BillingProblem):
    """The preview expired or the subscription changed since: 409 with a fresh preview, nothing charged."""

    status = 409

    def __init__(self, message: str, fresh: ChangePreview):
        super().__init__(message)
        self.fresh = fresh


# ----- preview ------------------------------------------------------------------------------------


def _changeable(organization: Organization) -> Subscription:
    """The organization's live subscription that Chargebee has; else the refusal (409)."""
    subscription = current_subscription(organization)
    if subscription is None or not subscription.chargebee_subscription_id:
        raise BillingProblem(_("There is no subscription to change: subscribe first."), status=409)
    return subscription


def _choose(subscription: Subscription, plan_id: Any, seats: Any) -> tuple[plans.Plan, int]:
    if seats is None or seats == "":
        seats = subscription.seats
    try:
        chosen = plan_id if plan_id not in (None, "") else subscription.plan_id
        # Chargebee cannot change a subscription's currency: only prices in it are on offer.
        plan, quantity = plans.choose(chosen, seats, currency=subscription.currency)
    except plans.InvalidPlan as exc:
        raise BillingProblem(str(exc), status=400) from None
    if (plan.id, quantity) == (subscription.plan_id, subscription.seats):
        raise BillingProblem(_("That is already the subscription's plan and number of seats."), status=400)
    return plan, quantity


def _period_amount(price: ItemPrice | None, seats: int) -> int | None:
    if price is None or price.price is None or price.pricing_model not in ("flat_fee", "per_unit"):
        return None
    return price.price if price.pricing_model == "flat_fee" else price.price * seats


def is_increase(subscription: Subscription, plan_id: str, seats: int) -> bool:
    """Whether the change costs more per term (charged now, prorated) rather than less (at the term's end).

    The same plan: more seats. Another plan: compared by the mirrored item prices when both are known
    (flat fee or per unit, same period); otherwise a plan change that keeps or adds seats counts as one.
    """
    if plan_id == subscription.plan_id:
        return seats > subscription.seats
    prices = {price.pk: price for price in ItemPrice.objects.filter(pk__in=[plan_id, subscription.plan_id])}
    old, new = prices.get(subscription.plan_id), prices.get(plan_id)
    before, after = _period_amount(old, subscription.seats), _period_amount(new, seats)
    if before is not None and after is not None and (old.period, old.period_unit) == (new.period, new.period_unit):
        return after >= before
    return seats >= subscription.seats


def _amount(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_AMOUNT <= value <= MAX_AMOUNT:
        raise InvalidSnapshot("an estimate amount is not an integer")
    return value


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(_amount(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidSnapshot("an estimate time is out of range") from None


def _lines(invoice: dict) -> list[dict]:
    lines = []
    for line in invoice.get("line_items") or []:
        if not isinstance(line, dict):
            raise InvalidSnapshot("a line item is not an object")
        description = line.get("entity_description") or line.get("description") or line.get("entity_id") or ""
        lines.append(
            {
                "description": str(description)[:200],
                "quantity": _amount(line.get("quantity") or 0),
                "amount": _amount(line.get("amount") or 0),
                "dateFrom": line.get("date_from") if isinstance(line.get("date_from"), int) else None,
                "dateTo": line.get("date_to") if isinstance(line.get("date_to"), int) else None,
            }
        )
    return lines


def read_estimate(estimate: dict, subscription: Subscription) -> dict[str, Any]:
    """The ChangePreview fields of Chargebee's estimate object; ``InvalidSnapshot`` when it cannot be read."""
    if not isinstance(estimate, dict):
        raise InvalidSnapshot("the estimate is not an object")
    now_invoice = estimate.get("invoice_estimate") or {}
    next_invoice = estimate.get("next_invoice_estimate") or {}
    notes = estimate.get("credit_note_estimates") or []
    sub_estimate = estimate.get("subscription_estimate") or {}
    if not all(isinstance(part, dict) for part in (now_invoice, next_invoice, sub_estimate)):
        raise InvalidSnapshot("an estimate part is not an object")
    if not isinstance(notes, list) or not all(isinstance(note, dict) for note in notes):
        raise InvalidSnapshot("credit_note_estimates is not a list of objects")
    currency = now_invoice.get("currency_code") or next_invoice.get("currency_code") or subscription.currency or "USD"
    if not isinstance(currency, str) or len(currency) != 3:
        raise InvalidSnapshot("the estimate's currency is not a currency code")
    next_amount = next_invoice.get("amount_due", next_invoice.get("total")) if next_invoice else None
    return {
        "currency": currency.upper(),
        "amount_due_now": _amount(now_invoice.get("amount_due") or 0),
        "credits": sum(_amount(note.get("total") or 0) for note in notes),
        "next_billing_at": _when(sub_estimate.get("next_billing_at")) or subscription.next_billing_at,
        "next_amount": None if next_amount is None else _amount(next_amount),
        "lines": _lines(now_invoice or next_invoice),
    }


def _estimate(user_id: str, subscription: Subscription, plan_id: str, seats: int) -> ChangePreview:
    """One Chargebee call: the estimate of this change, stored as a fresh preview (callers authorize and count)."""
    increase = is_increase(subscription, plan_id, seats)
    params = change_params(item_price_id=plan_id, quantity=seats, increase=increase)
    try:
        estimate = get_gateway().estimate_update_for_items(subscription.chargebee_subscription_id, params)
        fields = read_estimate(estimate, subscription)
    except ChargebeeError as exc:
        raise vendor_problem(exc) from exc
    except InvalidSnapshot as exc:
        logger.error("unreadable estimate from Chargebee: %s", exc)
        raise BillingProblem(_("Chargebee sent an estimate this site cannot read."), status=502) from exc
    now = timezone.now()
    effective_at = None if increase else (fields["next_billing_at"] or subscription.current_period_end)
    return ChangePreview.objects.create(
        organization_id=subscription.organization_id,
        subscription=subscription,
        user_id=user_id,
        plan_id=plan_id,
        seats=seats,
        increase=increase,
        params=params,
        subscription_version=subscription.resource_version,
        effective_at=effective_at,
        created_at=now,
        expires_at=now + PREVIEW_LIFETIME,
        **fields,
    )


def preview_change(context: BillingContext | None, *, plan_id: Any = None, seats: Any = None) -> ChangePreview:
    """Estimate a change of the current subscription's plan (default: the same) and seats: one Chargebee call."""
    organization = authorize_reference(context, require_organization(context).pk, Action.CHANGE)
    subscription = _changeable(organization)
    plan, quantity = _choose(subscription, plan_id, seats)
    throttle(context, organization)
    check_seat_floor(subscription, quantity)
    return _estimate(context.user_id, subscription, plan.id, quantity)


# ----- confirm ------------------------------------------------------------------------------------


def own_preview(context: BillingContext | None, preview_id: Any) -> ChangePreview:
    """The session user's preview in the session's organization; 404 for anyone else's (nothing revealed)."""
    organization = require_organization(context)
    authorize_reference(context, organization.pk, Action.CHANGE)
    found = None
    if isinstance(preview_id, str) and preview_id:
        found = (
            ChangePreview.objects.filter(pk=preview_id, organization=organization, user_id=context.user_id)
            .select_related("subscription")
            .first()
        )
    if found is None:
        raise NotFound(_("No such change preview: preview the change again."))
    return found


def _stale_reason(preview: ChangePreview, subscription: Subscription, now: datetime) -> str:
    if now >= preview.expires_at:
        return _("This preview has expired; here is a fresh one. Nothing was charged.")
    if subscription.resource_version != preview.subscription_version:
        return _("The subscription changed since this preview; here is a fresh one. Nothing was charged.")
    return ""


def _claim(preview: ChangePreview, now: datetime) -> str:
    """Move a preview to APPLYING (committed before any call); the reason it is stale instead, if it is."""
    with transaction.atomic():
        locked = ChangePreview.objects.select_for_update().get(pk=preview.pk)
        if locked.state != State.PREVIEWED:
            preview.state = locked.state
            return ""
        subscription = Subscription.objects.filter(LIVE, pk=preview.subscription_id).first()
        if subscription is None:
            raise BillingProblem(_("This subscription has ended: subscribe again instead."), status=409)
        reason = _stale_reason(locked, subscription, now)
        if reason:
            return reason
        locked.state, locked.confirmed_at = State.APPLYING, now
        locked.save(update_fields=["state", "confirmed_at"])
        preview.state, preview.confirmed_at = locked.state, locked.confirmed_at
    return ""


def _finish(preview: ChangePreview, state: str, message: str) -> None:
    preview.state, preview.message = state, message[:500]
    ChangePreview.objects.filter(pk=preview.pk).update(state=state, message=preview.message)


def _apply(answer: dict) -> Subscription:
    try:
        result = apply_subscription(answer["subscription"], answer.get("customer"))
    except InvalidSnapshot as exc:
        logger.error("unreadable subscription from Chargebee: %s", exc)
        raise BillingProblem(_("Chargebee sent a subscription this site cannot read."), status=502) from exc
    return result.subscription  # the customer went with it: its card_status and details (customer_profile)


def _card_usable(preview: ChangePreview) -> bool:
    profile = BillingProfile.objects.filter(organization_id=preview.organization_id).first()
    status = (profile.card_status or profile.payment_status) if profile else ""
    return status in CARD_USABLE


def _needs_customer(error: ChargebeeError) -> bool:
    """Chargebee says the payment needs the customer (3-D Secure authentication)."""
    if error.api_error_code in ("payment_intent_invalid", "payment_method_verification_failed"):
        return "authentic" in (error.cause + error.message).lower() or "3d" in error.message.lower()
    return error.api_error_code == "payment_processing_failed" and "authentic" in (error.cause + error.message).lower()


def _hosted(context: BillingContext, preview: ChangePreview, gateway: ChargebeeGateway) -> ChangeResult:
    """Chargebee's hosted page makes the same change and takes the payment (one call)."""
    subscription = preview.subscription
    page = open_change_page(context, subscription, preview.plan_id, preview.seats, gateway)
    message = _("Confirm the payment on Chargebee's page to make the change.")
    _finish(preview, State.HOSTED, message)
    return ChangeResult(Outcome.HOSTED, preview, subscription, message, changed=False, url=page.url)


def _made(row: Subscription, preview: ChangePreview) -> bool:
    if preview.increase:
        return (row.plan_id, row.seats) == (preview.plan_id, preview.seats)
    return row.has_scheduled_changes


def _after_failure(preview: ChangePreview, error: ChargebeeError, gateway: ChargebeeGateway) -> ChangeResult:
    """Re-read the subscription (one call), show it as Chargebee has it, and say whether the change was made."""
    row = preview.subscription
    try:
        row = _apply(gateway.retrieve_subscription(row.chargebee_subscription_id)) or row
    except ChargebeeError as exc:
        logger.warning("subscription %s not re-read after a failed change: %s", row.pk, exc.summary)
    row.refresh_from_db()
    changed = _made(row, preview)
    declined = error.api_error_code == "payment_processing_failed"
    if declined and changed:
        dues = format_money(row.total_dues, row.currency or preview.currency) if row.total_dues else ""
        message = _("The payment was declined, but the change was made: an invoice %(dues)s is unpaid.") % {
            "dues": _("of %(amount)s") % {"amount": dues} if dues else ""
        }
        message = message.replace("  ", " ")
    elif declined:
        message = _("The payment was declined, so nothing was changed or charged.")
    elif changed:
        message = _("Chargebee answered with an error, but the change was made.")
    else:
        message = _("Chargebee refused the change, so nothing was changed: %(reason)s") % {"reason": error.message}
    _finish(preview, State.FAILED, message)
    return ChangeResult(Outcome.DECLINED if declined else Outcome.REFUSED, preview, row, message, changed)


def _store_renewal_figure(row: Subscription, preview: ChangePreview) -> None:
    """The estimate already said what the renewal after the change costs: stored as the row's renewal estimate
    (``renewal_estimates``) for the version just applied, so the confirm needs no second call for it."""
    row.refresh_from_db()
    if preview.next_amount is None or row.resource_version is None:
        return
    newest = Q(renewal_estimate_version__isnull=True) | Q(renewal_estimate_version__lte=row.resource_version)
    Subscription.objects.filter(newest, pk=row.pk).update(
        renewal_amount=preview.next_amount,
        renewal_estimated_at=timezone.now(),
        renewal_estimate_version=row.resource_version,
    )


def _done_message(preview: ChangePreview) -> str:
    plan = plans.find(preview.plan_id)
    what = {"plan": plan.name if plan else preview.plan_id, "seats": preview.seats}
    if not preview.increase:
        when = preview.effective_at
        day = formats.date_format(timezone.localtime(when), "DATE_FORMAT") if when else ""
        return _("Scheduled: %(plan)s with %(seats)s seats from %(day)s.") % {**what, "day": day}
    if preview.amount_due_now:
        charged = format_money(preview.amount_due_now, preview.currency)
        return _("Done: %(plan)s with %(seats)s seats; %(amount)s was charged.") % {**what, "amount": charged}
    return _("Done: %(plan)s with %(seats)s seats.") % what


def _result_of(preview: ChangePreview) -> ChangeResult:
    """What an earlier confirm of this preview came to (a repeated confirm makes no call)."""
    subscription = Subscription.objects.get(pk=preview.subscription_id)
    if preview.state == State.APPLIED:
        outcome = Outcome.APPLIED if preview.increase else Outcome.SCHEDULED
        return ChangeResult(outcome, preview, subscription, preview.message, changed=True)
    raise BillingProblem(preview.message or _("This preview was already used; preview the change again."), status=409)


def _summary(result: ChangeResult) -> dict[str, Any]:
    """What the audit trail keeps (never the hosted page's URL)."""
    return {"outcome": str(result.outcome), "changed": result.changed, "subscription_id": result.subscription.pk}


@audit.billing_action("change", asked=("preview_id",), answer=_summary)
def confirm_change(context: BillingContext | None, *, preview_id: Any) -> ChangeResult:
    """Apply a previewed change: one Chargebee call (two when Chargebee sends the payment to its hosted page)."""
    organization = authorize_reference(context, require_organization(context).pk, Action.CHANGE)
    preview = own_preview(context, preview_id)
    if preview.state in (State.APPLIED, State.HOSTED, State.FAILED):
        return _result_of(preview)
    if preview.state == State.PREVIEWED:
        check_seat_floor(preview.subscription, preview.seats)  # members may have joined since the preview
    reason = _claim(preview, timezone.now())
    if reason:
        subscription = Subscription.objects.get(pk=preview.subscription_id)
        throttle(context, organization)  # the fresh preview counts as a preview
        raise PreviewStale(reason, _estimate(context.user_id, subscription, preview.plan_id, preview.seats))
    if preview.state != State.APPLYING:  # another request finished it meanwhile
        return _result_of(ChangePreview.objects.get(pk=preview.pk))
    gateway = get_gateway()
    if preview.amount_due_now > 0 and not _card_usable(preview):
        return _hosted(context, preview, gateway)
    try:
        answer = gateway.update_for_items(
            preview.subscription.chargebee_subscription_id, preview.params, idempotency_key=preview.request_key
        )
    except ChargebeeError as exc:
        if _needs_customer(exc):
            return _hosted(context, preview, gateway)
        if exc.retryable:  # it may have gone through: a repeated confirm sends the same key, changing once
            raise vendor_problem(exc) from exc
        return _after_failure(preview, exc, gateway)
    row = _apply(answer) or preview.subscription
    if not preview.increase:
        plan = plans.find(preview.plan_id)
        scheduled = {
            "plan_id": preview.plan_id,
            "plan_name": plan.name if plan else preview.plan_id,
            "seats": preview.seats,
            "effective_at": preview.effective_at.isoformat() if preview.effective_at else None,
        }
        Subscription.objects.filter(pk=row.pk, has_scheduled_changes=True).update(scheduled_change=scheduled)
    _store_renewal_figure(row, preview)
    row.refresh_from_db()
    message = _done_message(preview)
    _finish(preview, State.APPLIED, message)
    return ChangeResult(Outcome.APPLIED if preview.increase else Outcome.SCHEDULED, preview, row, message, True)


# ----- undo ------------------------------------------------------------------------------------------


@audit.billing_action("undo_scheduled_change", answer=lambda row: {"subscription_id": row.pk})
def undo_scheduled_change(context: BillingContext | None) -> Subscription:
    """Remove the change waiting for the term's end (one Chargebee call); 409 when there is none."""
    organization = authorize_reference(context, require_organization(context).pk, Action.CHANGE)
    subscription = _changeable(organization)
    if not subscription.has_scheduled_changes:
        raise BillingProblem(_("No change is scheduled."), status=409)
    throttle(context, organization)
    try:
        answer = get_gateway().remove_scheduled_changes(subscription.chargebee_subscription_id)
    except ChargebeeError as exc:
        raise vendor_problem(exc) from exc
    row = _apply(answer) or subscription
    renewal_estimates.refresh_after_change(row.pk)  # the renewal figure without the change (a second call inline)
    row.refresh_from_db()
    return row
