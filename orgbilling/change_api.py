"""JSON API of previewed changes (``orgbilling.changes``). Thin; refusals are ``{"error": message}``.

* ``POST /api/subscription/preview`` ``{"seats", "planId"?}``: 200 the preview (below); 400 bad body,
  plan or seats (or under the seat floor); 401; 403 (not a billing manager, CSRF); 409 no subscription;
  429 throttled (a preview counts once); 502 Chargebee failed.
* ``POST /api/subscription/change`` ``{"previewId"}``: 200 ``{"outcome": "applied" | "scheduled" |
  "hosted", "message", "changed", "subscription", "url"?}`` (``url``: Chargebee's page, for hosted);
  402 ``outcome: "declined"`` and 409 ``"refused"`` with ``error``, ``changed`` and the subscription as
  Chargebee has it; 409 ``{"error", "preview"}`` with a fresh preview when this one expired or the
  subscription changed (nothing charged); 404 not the user's preview; 401; 403; 502.
* ``POST /api/subscription/scheduled-change/remove``: 200 ``{"subscription"}``; 409 none scheduled.

A preview: ``previewId``, ``planId``, ``seats``, ``takesEffect`` (``now`` or ``term_end``),
``effectiveAt``, ``expiresAt``, ``currency``, ``amountDueNow``, ``credits``, ``nextBillingAt``,
``nextAmount`` (amounts in minor units, each with a ``...Formatted`` string), and ``lines`` (the
invoice charged now, or for a change at the term's end the first invoice after it).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from . import changes
from .authorization import require_organization
from .decorators import billing_api
from .json_input import read_json_object
from .models import ChangePreview, Subscription
from .money import format_money

FAILED_STATUS = {changes.Outcome.DECLINED: 402, changes.Outcome.REFUSED: 409}


def _money(amount: int | None, currency: str) -> str | None:
    return None if amount is None else format_money(amount, currency)


def preview_json(preview: ChangePreview) -> dict:
    currency = preview.currency
    return {
        "previewId": preview.id,
        "planId": preview.plan_id,
        "seats": preview.seats,
        "takesEffect": "now" if preview.increase else "term_end",
        "effectiveAt": preview.effective_at,
        "expiresAt": preview.expires_at,
        "currency": currency,
        "amountDueNow": preview.amount_due_now,
        "amountDueNowFormatted": _money(preview.amount_due_now, currency),
        "credits": preview.credits,
        "creditsFormatted": _money(preview.credits, currency),
        "nextBillingAt": preview.next_billing_at,
        "nextAmount": preview.next_amount,
        "nextAmountFormatted": _money(preview.next_amount, currency),
        "lines": [{**line, "amountFormatted": _money(line["amount"], currency)} for line in preview.lines],
    }


def subscription_json(subscription: Subscription) -> dict:
    return {
        "id": subscription.id,
        "status": subscription.status,
        "planId": subscription.plan_id,
        "seats": subscription.seats,
        "currentPeriodEnd": subscription.current_period_end,
        "hasScheduledChanges": subscription.has_scheduled_changes,
        "scheduledChange": subscription.scheduled_change or None,
        "dueInvoicesCount": subscription.due_invoices_count,
    }


@require_POST
@billing_api
def preview(request: HttpRequest) -> JsonResponse:
    require_organization(request.billing)  # 401 and 403 before any complaint about the body
    body = read_json_object(request)
    previewed = changes.preview_change(request.billing, plan_id=body.get("planId"), seats=body.get("seats"))
    return JsonResponse(preview_json(previewed))


@require_POST
@billing_api
def change(request: HttpRequest) -> JsonResponse:
    require_organization(request.billing)
    body = read_json_object(request)
    try:
        result = changes.confirm_change(request.billing, preview_id=body.get("previewId"))
    except changes.PreviewStale as stale:
        return JsonResponse({"error": stale.message, "preview": preview_json(stale.fresh)}, status=409)
    answer = {
        "outcome": str(result.outcome),
        "message": result.message,
        "changed": result.changed,
        "subscription": subscription_json(result.subscription),
    }
    if result.url:
        answer["url"] = result.url
    status = FAILED_STATUS.get(result.outcome, 200)
    if status != 200:
        answer["error"] = result.message
    return JsonResponse(answer, status=status)


@require_POST
@billing_api
def remove_scheduled_change(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"subscription": subscription_json(changes.undo_scheduled_change(request.billing))})
