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
* ``POST /billing/pay``: 303 to Chargebee's page collecting the dues; ``GET
  /billing/pay/return`` re-reads them and redirects to ``/billing`` (never refused).
* ``POST /billing/payment-method``: 303 to Chargebee's manage_payment_sources
  page; ``GET /billing/payment-method/return`` re-reads the card (never refused).
* ``POST /billing/details``: billing details to Chargebee; its validation
  errors are shown on the field (400), then 303 back to ``/billing``.
* ``POST /billing/invoices/<id>/pdf``: 303 to a fresh Chargebee download link
  (403 members, 404 another organization's or gone, 429, 502 on the page).
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import quote

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from . import billing_details, checkout, invoice_downloads, offers, payment_health, payment_sources
from .authorization import Action, authorize_reference, is_billing_manager
from .decorators import View, back_to_billing, problem_page, see_other
from .errors import BillingProblem, NotFound, NotSignedIn


def _billing_page(
    request: HttpRequest, problem: BillingProblem | None = None, details_form: forms.Form | None = None
) -> HttpResponse:
    context = request.billing
    organization = context.organization
    subscription = checkout.current_subscription(organization)
    had_trial = subscription is None and checkout.had_trial(organization)  # trials matter to a new checkout only
    offer = offers.build_offer(organization, subscription, request.GET.get("period"), had_trial=had_trial)
    can_manage = is_billing_manager(context)
    response = render(
        request,
        "orgbilling/billing.html",
        {
            "organization": organization,
            "subscription": subscription,
            "subscription_plan": offer.current_plan,
            "plans": offer.plans,  # what the forms offer: plans on offer, in the subscription's currency
            "offer": offer,
            "can_manage": can_manage,
            "past_due": payment_health.past_due(subscription),
            "profile": (profile := payment_sources.profile_of(organization)),
            "card_warning": payment_sources.card_warning(profile, timezone.localdate()),
            "details_form": details_form,
            "details_fields": billing_details.shown_fields(details_form, profile),
            "invoices": (invoices := invoice_downloads.invoice_page(context, request.GET.get("invoices")))
            if can_manage
            else None,
            "invoice_rows": invoice_downloads.shown_invoices(invoices) if can_manage else [],
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
    def wrapped(request: HttpRequest, **kwargs: str) -> HttpResponse:
        try:
            return view(request, **kwargs)
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


@billing_form
def invoice_pdf(request: HttpRequest, invoice_id: str) -> HttpResponse:
    return see_other(invoice_downloads.download_invoice(request.billing, invoice_id).url)


@billing_form
def pay(request: HttpRequest) -> HttpResponse:
    return see_other(payment_health.pay_now(request.billing))


@require_GET
@back_to_billing
def pay_return(request: HttpRequest) -> HttpResponse:
    if payment_health.payment_return(request.billing, request.GET.get("id")):
        messages.success(request, _("Thank you: your payment is recorded."), fail_silently=True)
    else:
        messages.info(request, _("Your payment is being processed; this page shows it shortly."), fail_silently=True)
    return HttpResponseRedirect(reverse("orgbilling:billing"))


@billing_form
def payment_method(request: HttpRequest) -> HttpResponse:
    return see_other(payment_health.update_payment_method(request.billing))


@require_GET
@back_to_billing
def payment_method_return(request: HttpRequest) -> HttpResponse:
    if payment_health.payment_method_return(request.billing, request.GET.get("id")):
        messages.success(request, _("Your payment method is up to date."), fail_silently=True)
    else:
        updating = _("Your payment method is being updated; this page shows it shortly.")
        messages.info(request, updating, fail_silently=True)
    return HttpResponseRedirect(reverse("orgbilling:billing") + "#payment-method")


@billing_form
def details(request: HttpRequest) -> HttpResponse:
    billing_details.authorize_edit(request.billing)
    form = billing_details.BillingDetailsForm(request.POST)
    try:
        if not form.is_valid():
            raise BillingProblem(_("Check the billing details: some fields need a correction."))
        billing_details.update_details(request.billing, form.cleaned_data)
    except billing_details.FieldRefused as refused:
        form.add_error(refused.field or None, refused.message)
        return _billing_page(request, refused, details_form=form)
    except BillingProblem as problem:
        return _billing_page(request, problem, details_form=form)
    messages.success(request, _("Your billing details are saved."), fail_silently=True)
    return HttpResponseRedirect(reverse("orgbilling:billing") + "#billing-details")
