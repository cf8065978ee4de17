"""Cancel at the end of the term and keep the subscription: the billing page's forms (thin, as in ``views``).

* ``GET /billing/cancel``: the confirmation page, naming the date the
  subscription ends (billing managers; 403 for members; 409 when it cannot be
  cancelled; no Chargebee call).
* ``POST /billing/cancel``: ``cancel_for_items`` with ``end_of_term=true``,
  then 302 to ``/billing`` with the date; ``POST /billing/keep``:
  ``remove_scheduled_cancellation``, then 302 to ``/billing``. A refusal is
  shown on the billing page with its status (403, 404, 409, 429, 502).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from . import cancellation
from .current_charges import describe
from .decorators import problem_page
from .errors import BillingProblem
from .views import billing_form


def _back() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("orgbilling:billing") + "#ob-current")


@require_GET
def cancel_confirm(request: HttpRequest) -> HttpResponse:
    try:
        subscription = cancellation.cancellable(request.billing, subscription_id=request.GET.get("subscription"))
    except BillingProblem as problem:
        return problem_page(request, problem)
    context = {
        "organization": request.billing.organization,
        "subscription": subscription,
        "charges": describe(subscription),
        "ends": cancellation.term_end(subscription),
    }
    return render(request, "orgbilling/cancel_confirm.html", context)


@billing_form
def cancel(request: HttpRequest) -> HttpResponse:
    subscription = cancellation.schedule_cancellation(request.billing, subscription_id=request.POST.get("subscription"))
    ends = subscription.cancelled_at or cancellation.term_end(subscription)
    text = _("Your subscription is cancelled at the end of its term: it ends on %(day)s, with no further charge.")
    messages.success(request, text % {"day": date_format(ends, "DATE_FORMAT") if ends else ""}, fail_silently=True)
    return _back()


@billing_form
def keep(request: HttpRequest) -> HttpResponse:
    cancellation.keep_subscription(request.billing, subscription_id=request.POST.get("subscription"))
    messages.success(request, _("Your subscription continues: it renews as before."), fail_silently=True)
    return _back()


def cancel_page(request: HttpRequest) -> HttpResponse:
    """``/billing/cancel``: GET asks to confirm, POST cancels (405 for anything else)."""
    return cancel(request) if request.method == "POST" else cancel_confirm(request)
