"""Billing pages of previewed changes (``orgbilling.changes``). Thin, like ``views``.

* ``POST /billing/change/preview`` (``plan``, ``seats``): one estimate call, then 303 to the preview page;
  a refusal (400 seats or floor, 403, 409, 429, 502) is shown on the billing page.
* ``GET /billing/change/preview/<id>``: the preview from the local table (no Chargebee call): charge now,
  credits, next renewal, lines, when a change at the term's end takes effect, and a Confirm button.
* ``POST /billing/change/confirm`` (``preview``): 303 to ``/billing`` with what happened as a message, or
  to Chargebee's hosted page when the payment needs the customer; an expired or outdated preview shows
  the fresh preview instead (409).
* ``POST /billing/change/undo``: removes the scheduled change, then 303 to ``/billing``.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from . import changes, plans
from .decorators import problem_page, see_other
from .errors import BillingProblem
from .models import ChangePreview
from .views import billing_form


def _preview_page(request: HttpRequest, preview: ChangePreview, problem: str = "", status: int = 200) -> HttpResponse:
    plan = plans.find(preview.plan_id)
    context = {
        "organization": request.billing.organization,
        "preview": preview,
        "plan_name": plan.name if plan else preview.plan_id,
        "problem": problem,
    }
    return render(request, "orgbilling/change_preview.html", context, status=status)


@billing_form
def preview(request: HttpRequest) -> HttpResponse:
    previewed = changes.preview_change(
        request.billing, plan_id=request.POST.get("plan"), seats=request.POST.get("seats")
    )
    return see_other(reverse("orgbilling:change-preview-page", args=[previewed.pk]))


@require_GET
def preview_page(request: HttpRequest, preview_id: str) -> HttpResponse:
    try:
        previewed = changes.own_preview(request.billing, preview_id)
    except BillingProblem as problem:
        return problem_page(request, problem)
    if previewed.state != ChangePreview.State.PREVIEWED:
        return HttpResponseRedirect(reverse("orgbilling:billing"))
    return _preview_page(request, previewed)


@billing_form
def confirm(request: HttpRequest) -> HttpResponse:
    try:
        result = changes.confirm_change(request.billing, preview_id=request.POST.get("preview"))
    except changes.PreviewStale as stale:
        return _preview_page(request, stale.fresh, stale.message, status=409)
    if result.outcome == changes.Outcome.HOSTED:
        return see_other(result.url)
    if result.outcome in (changes.Outcome.DECLINED, changes.Outcome.REFUSED):
        messages.error(request, result.message, fail_silently=True)
    else:
        messages.success(request, result.message, fail_silently=True)
    return see_other(reverse("orgbilling:billing"))


@billing_form
def undo(request: HttpRequest) -> HttpResponse:
    changes.undo_scheduled_change(request.billing)
    messages.success(request, _("The scheduled change was undone."), fail_silently=True)
    return see_other(reverse("orgbilling:billing"))
