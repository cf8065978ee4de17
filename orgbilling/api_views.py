"""JSON API for the app's own front ends. Thin, like the pages; refusals are ``{"error": message}``.

* ``GET /api/session``: 200 ``{userId, email, organizationId, roles}``; 401 signed out.
  It also sets the CSRF cookie that cookie-authenticated POSTs must echo.
* ``GET /api/subscription``: 200 ``{"subscriptions": [...], "seatsUsed", "seatsPending", "seatLimit",
  "seatsCountedAt", "notices": [{kind, severity, message, url}]}`` from the local tables only (counts null
  until first counted, ``seatLimit`` null: no cap; the billing profile is joined for the notices).
* ``GET /api/plans[?period=year]``: 200 ``{"currency", "period", "periods", "plans": [...], "current"}``: the
  offered prices as the billing page shows them (``orgbilling.offers``: every period, amounts in minor units
  beside formatted strings, tiers, trial, seat range), from local tables only; 401; 403 another organization.
* ``POST /api/subscription/create``: 200 ``{"mode": "hosted", "url", "subscriptionId"}``;
  400 bad body (``orgbilling.json_input``), plan or seats; 401; 403 (another
  organization, not a billing manager, CSRF); 409 already subscribed; 429
  throttled; 502 Chargebee failed.
* ``GET /api/invoices?page=N``: 200 ``{"invoices": [...], "page", "pages", "count"}``,
  newest first, from the local table; 401; 403 members.
* ``POST /api/invoices/<id>/pdf``: 200 ``{"url", "validTill"}`` (a fresh Chargebee
  link); 401; 403 members or CSRF; 404 not the organization's or gone from
  Chargebee; 429 throttled; 502 Chargebee failed.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from . import checkout, invoice_downloads, notices, offers, subscription_listing
from .authorization import Action, authorize_reference, require_organization
from .decorators import billing_api
from .errors import NotSignedIn
from .json_input import read_json_object
from .models import Invoice, Organization, Subscription


def _subscription(subscription: Subscription) -> dict:
    return {
        "id": subscription.id,
        "status": subscription.status,
        "entitled": subscription.is_active,
        "planId": subscription.plan_id,
        "seats": subscription.seats,
        "trialEnd": subscription.trial_end,
        "currentPeriodEnd": subscription.current_period_end,
        "cancelAtPeriodEnd": subscription.cancel_at_period_end,
    }


@require_GET
@billing_api
@ensure_csrf_cookie
def session(request: HttpRequest) -> JsonResponse:
    context = request.billing
    if context is None:
        raise NotSignedIn(_("Sign in first."))
    return JsonResponse(
        {
            "userId": context.user_id,
            "email": context.email,
            "organizationId": context.organization_id or None,
            "roles": list(context.roles),
        }
    )


@require_GET
@billing_api
def subscriptions(request: HttpRequest) -> JsonResponse:
    """Every subscription of the session's organization, newest first: one query once the process knows the org."""
    context = request.billing
    authorize_reference(context, context.organization_id if context else "", Action.VIEW)
    # The id alone: the organization row itself is not needed (and not loaded) to list its subscriptions.
    # The seat counts and the notices' profile ride along with the subscriptions' query (a statement built once
    # per process: see subscription_listing); a separate query only when there are none.
    listed = subscription_listing.listed_with_profiles(context.organization_id)
    organization = listed[0].organization if listed else Organization.objects.filter(pk=context.organization_id).first()
    return JsonResponse(
        {
            "subscriptions": [_subscription(s) for s in listed],
            "seatsUsed": organization.seats_used if organization else None,
            "seatsPending": organization.seats_pending if organization else None,
            "seatLimit": organization.seat_limit if organization else None,
            "seatsCountedAt": organization.seats_counted_at if organization else None,
            "notices": [notice.as_json() for notice in notices.notices(listed)],
        }
    )


@require_GET
@billing_api
def plans(request: HttpRequest) -> JsonResponse:
    context = request.billing
    organization = authorize_reference(context, context.organization_id if context else "", Action.VIEW)
    subscription = checkout.current_subscription(organization)
    had_trial = subscription is None and checkout.had_trial(organization)
    offer = offers.build_offer(organization, subscription, request.GET.get("period"), had_trial=had_trial)
    return JsonResponse(
        {
            "currency": offer.currency or None,
            "period": offer.period if offer.periods else None,
            "periods": offer.periods,
            "plans": [card.as_json() for card in offer.choices],
            "current": offer.current.as_json() if offer.current else None,
        }
    )


@require_POST
@billing_api
def create_subscription(request: HttpRequest) -> JsonResponse:
    require_organization(request.billing)  # 401 and 403 before any complaint about the body
    body = read_json_object(request)
    hosted = checkout.start_checkout(
        request.billing, reference_id=body.get("referenceId"), plan_id=body.get("planId"), seats=body.get("seats")
    )
    return JsonResponse({"mode": "hosted", "url": hosted.url, "subscriptionId": hosted.subscription_id})


def _invoice(invoice: Invoice) -> dict:
    return {
        "id": invoice.id,
        "subscriptionId": invoice.subscription_id,
        "status": invoice.status,
        "date": invoice.date,
        "dueDate": invoice.due_date,
        "total": invoice.total,
        "amountPaid": invoice.amount_paid,
        "amountDue": invoice.amount_due,
        "currency": invoice.currency,
        "dunningStatus": invoice.dunning_status or None,
    }


@require_GET
@billing_api
def invoices(request: HttpRequest) -> JsonResponse:
    page = invoice_downloads.invoice_page(request.billing, request.GET.get("page"))
    return JsonResponse(
        {
            "invoices": [_invoice(invoice) for invoice in page],
            "page": page.number,
            "pages": page.paginator.num_pages,
            "count": page.paginator.count,
        }
    )


@require_POST
@billing_api
def invoice_pdf(request: HttpRequest, invoice_id: str) -> JsonResponse:
    download = invoice_downloads.download_invoice(request.billing, invoice_id)
    return JsonResponse({"url": download.url, "validTill": download.valid_till})
