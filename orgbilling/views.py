"""Billing pages. Thin: each turns a request into one service call and the result into a response.

* ``GET /billing``: the organization's subscription, the plan catalog and,
  for billing managers, the forms that change billing.
* ``POST /billing/subscribe``, ``/billing/change``, ``/billing/portal``: 303 to
  the Chargebee page; a refusal re-renders the billing page with its message
  and status (400, 403, 409, 429, 502).
* ``GET /api/subscription/success`` and ``/billing/portal/return``: where
  Chargebee sends the browser back; they sync, then redirect to ``/billing``
  (the success return asks for a sign-in after applying when the session is
  not the payer's, and shows a notice when the organization was deleted).
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import quote

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from . import checkout, plans
from .authorization import Action, authorize_reference, is_billing_manager
from .decorators import View, back_to_billing, problem_page, see_other
from .errors import BillingProblem, NotFound, NotSignedIn


def _billing_page(request: HttpRequest, problem: BillingProblem | None = None) -> HttpResponse:
    context = request.billing
    organization = context.organization
    subscription = checkout.current_subscription(organization)
    response = render(
        request,
        "orgbilling/billing.html",
        {
            "organization": organization,
            "subscription": subscription,
            "subscription_plan": plans.find(subscription.plan_id) if subscription else None,
            "plans": plans.catalog(),
            "can_manage": is_billing_manager(context),
            "success": request.GET.get("success") == "1" and problem is None,
            "problem": problem,
        },
        status=problem.status if problem else 200,
    )
    for name, value in (problem.headers if problem else {}).items():
        response[name] = value
    return response


def billing_form(view: View) -> View:
    """POST forms of the billing page: CSRF-protected; a refusal is shown on the billing page."""

    @wraps(view)
    def wrapped(request: HttpRequest) -> HttpResponse:
        try:
            return view(request)
        except (NotSignedIn, NotFound) as problem:
            return problem_page(request, problem)
        except BillingProblem as problem:
            if request.billing is None or request.billing.organization is None:
                return problem_page(request, problem)
            return _billing_page(request, problem)

    return require_POST(csrf_protect(wrapped))


@require_GET
def billing(request: HttpRequest) -> HttpResponse:
    try:
        authorize_reference(request.billing, request.billing.organization_id if request.billing else "", Action.VIEW)
    except BillingProblem as problem:
        return problem_page(request, problem)
    return _billing_page(request)


@billing_form
def subscribe(request: HttpRequest) -> HttpResponse:
    hosted = checkout.start_checkout(request.billing, plan_id=request.POST.get("plan"), seats=request.POST.get("seats"))
    return see_other(hosted.url)


@billing_form
def change(request: HttpRequest) -> HttpResponse:
    hosted = checkout.change_subscription(
        request.billing,
        subscription_id=request.POST.get("subscription"),
        plan_id=request.POST.get("plan"),
        seats=request.POST.get("seats"),
    )
    return see_other(hosted.url)


@billing_form
def portal(request: HttpRequest) -> HttpResponse:
    return see_other(checkout.open_portal(request.billing))


@require_GET
@back_to_billing
def portal_return(request: HttpRequest) -> HttpResponse:
    if checkout.return_from_portal(request.billing) is not None:
        messages.success(request, _("Your billing details are up to date."), fail_silently=True)
    return HttpResponseRedirect(reverse("orgbilling:billing"))


@require_GET
@back_to_billing
def subscription_success(request: HttpRequest) -> HttpResponse:
    """Chargebee's redirect after checkout; always lands on this site's /billing, whatever the query."""
    returned = checkout.complete_checkout(
        request.billing, subscription_id=request.GET.get("subscriptionId"), hosted_page_id=request.GET.get("id")
    )
    if returned.outcome == checkout.Returned.ORGANIZATION_DELETED:
        if returned.cancelled:
            text = _(
                "%(organization)s was deleted before your payment completed; "
                "the subscription was cancelled and your payment will be refunded."
            )
        else:
            text = _(
                "%(organization)s was deleted before your payment completed; "
                "the subscription is being cancelled and your payment refunded."
            )
        message = text % {"organization": returned.organization}
        return render(request, "orgbilling/notice.html", {"title": _("Payment refunded"), "message": message})
    billing = reverse("orgbilling:billing")
    if returned.outcome == checkout.Returned.ALREADY_SUBSCRIBED:
        already = _("This organization is already subscribed; nothing more was charged.")
        messages.info(request, already, fail_silently=True)
    landing = billing if returned.outcome == checkout.Returned.ALREADY_HANDLED else f"{billing}?success=1"
    if not returned.signed_in:
        return HttpResponseRedirect(f"{reverse('orgbilling:login')}?returnTo={quote(landing, safe='')}")
    return HttpResponseRedirect(landing)
