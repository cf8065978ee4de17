"""Hosted checkout, plan and seat changes, the customer portal, and bringing their results home.

Plain functions with plain arguments (the signed-in ``BillingContext`` and
the client's choices), called by the page and JSON views and tested
directly. Each one authorizes and throttles before its first Chargebee call
and raises a ``BillingProblem`` carrying the message and status to answer.

Checkout sends the local subscription id as Chargebee's ``subscription[id]``:
webhooks then match the local row at once, and two tabs that both pay cannot
create two subscriptions (Chargebee refuses the second one with that id).
Results come home through ``subscription_sync.apply_subscription``, the same
code (ordering guard, signals) the webhooks run, so the redirect, the webhook
and a portal-return resync can arrive in any order.

Every hosted page and portal session opened is recorded (``OpenedPage``, one
row each, so concurrent tabs never lose one). A return from Chargebee is
never refused nor throttled: a recorded page is applied even when the
payer's session expired, and each page or portal session costs Chargebee
calls on its first return only; an unrecorded page is refused without a call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import audit, conf, plans
from .authorization import Action, authorize_reference, require_organization, throttle
from .chargebee_gateway import ChargebeeError, ChargebeeGateway, customer_meta_data, get_gateway
from .chargebee_snapshot import InvalidSnapshot
from .customer_profile import apply_customer
from .deleted_org_cancellation import cancel_pending, cancel_with_refund
from .errors import BillingDenied, BillingProblem, NotFound
from .links import absolute_url
from .middleware import BillingContext
from .models import OpenedPage, Organization, Subscription
from .opened_pages import first_return, record_page
from .provisioning import OrganizationDeleted, ensure_customer
from .renewal_estimates import refresh_after_change
from .seat_counts import check_seat_floor
from .statuses import BLOCKING_CHECKOUT
from .subscription_sync import ApplyResult, apply_subscription, note_customer_version

logger = logging.getLogger(__name__)

Status = Subscription.Status
# A live subscription blocks a new checkout (orgbilling.statuses); a local "future" row only once Chargebee has it.
LIVE = Q(status__in=[status for status in BLOCKING_CHECKOUT if status != Status.FUTURE]) | Q(
    status=Status.FUTURE, chargebee_subscription_id__isnull=False
)
# A checkout started here that Chargebee has not confirmed: a local row only, not a subscription yet.
WAITING = Q(status=Status.FUTURE, chargebee_subscription_id__isnull=True, deleted_at__isnull=True)
DONE_STATES = ("succeeded", "acknowledged")
PORTAL_SESSION_LIFETIME = timedelta(hours=1)  # Chargebee's; a return after that claims nothing

VENDOR_MESSAGES = {
    "no_applicable_gateway": gettext_lazy(
        "Payments cannot be taken yet: a payment gateway must be configured in Chargebee "
        "(Settings > Payment gateways) by the site's administrator."
    ),
    "api_request_limit_exceeded": gettext_lazy(
        "Chargebee is receiving too many requests right now; try again in a minute."
    ),
    "api_authentication_failed": gettext_lazy(
        "Chargebee refused this site's API key; the site's administrator must fix it."
    ),
    "timeout": gettext_lazy("Chargebee did not answer in time; nothing was changed. Try again in a moment."),
    "network_error": gettext_lazy("Chargebee could not be reached; nothing was changed. Try again in a moment."),
}


@dataclass(frozen=True)
class HostedRedirect:
    """Where to send the browser (a Chargebee page) and the local subscription it concerns."""

    url: str
    subscription_id: str


class Returned(StrEnum):
    """What a return from a hosted checkout page came to."""

    APPLIED = "applied"
    ALREADY_HANDLED = "already handled"  # an earlier return of this page made the calls
    ALREADY_SUBSCRIBED = "already subscribed"  # this page was not paid; another page of the row was
    ORGANIZATION_DELETED = "organization deleted"  # paid after the deletion: cancelled, refunded


@dataclass(frozen=True)
class CheckoutReturn:
    outcome: Returned
    organization: Organization
    signed_in: bool  # the session is the payer's organization's; otherwise ask them to sign in
    cancelled: bool = True  # for ORGANIZATION_DELETED: False while the cancellation is still to be retried


def vendor_problem(error: ChargebeeError) -> BillingProblem:
    """A Chargebee failure as a message users can act on (502: the upstream failed)."""
    message = VENDOR_MESSAGES.get(error.api_error_code)
    if message is None:
        message = (
            _("Chargebee is having trouble right now; nothing was changed. Try again later.")
            if error.retryable
            else _("Chargebee refused the request: %(reason)s") % {"reason": error.message}
        )
    return BillingProblem(str(message), status=502)


def listed_subscriptions(organization_id: str) -> QuerySet[Subscription]:
    """All the organization's subscriptions, any status, newest first.

    A checkout row Chargebee has not confirmed yet is listed too, as ``future``:
    its id is the ``subscriptionId`` the checkout API answered, so a front end
    can follow it from checkout to active.
    """
    return Subscription.objects.filter(organization_id=organization_id).order_by("-created_at")


def current_subscription(organization: Organization) -> Subscription | None:
    """The subscription the billing page shows: the newest live one."""
    return organization.subscriptions.filter(LIVE).order_by("-created_at").first()


def _reference(context: BillingContext | None, reference_id: str | None) -> str:
    return reference_id or (context.organization_id if context else "")


def _own_subscription(organization: Organization, subscription_id: object) -> Subscription:
    """The organization's subscription with this local id; 404 for anyone else's (nothing leaked)."""
    found = organization.subscriptions.filter(pk=subscription_id).first() if isinstance(subscription_id, str) else None
    if found is None:
        raise NotFound(_("No such subscription in your organization."))
    return found


def _choose(plan_id: object, seats: object, currency: str = "") -> tuple[plans.Plan, int]:
    try:
        return plans.choose(plan_id, seats, currency=currency)
    except plans.InvalidPlan as exc:
        raise BillingProblem(str(exc), status=400) from None


def _apply(subscription: dict, customer: dict | None) -> ApplyResult:
    """Apply a snapshot Chargebee's API returned; one it cannot read is Chargebee's failure (502)."""
    try:
        return apply_subscription(subscription, customer)
    except InvalidSnapshot as exc:
        logger.error("unreadable subscription from Chargebee: %s", exc)
        raise BillingProblem(_("Chargebee sent a subscription this site cannot read."), status=502) from exc


def _waiting_row(organization: Organization, plan: plans.Plan, seats: int) -> Subscription:
    """Reuse the organization's unconfirmed checkout row, or create it; concurrent tabs share one."""
    with transaction.atomic():
        Organization.objects.locked().get(pk=organization.pk)
        row = organization.subscriptions.filter(WAITING).order_by("-created_at").first()
        if row is None:
            return Subscription.objects.create(organization=organization, plan_id=plan.id, seats=seats)
        if (row.plan_id, row.seats) != (plan.id, seats):
            row.plan_id, row.seats = plan.id, seats
            row.save(update_fields=["plan_id", "seats", "updated_at"])
        return row


def had_trial(organization: Organization) -> bool:
    """Whether any subscription of the organization ever had a trial (each organization gets one)."""
    return organization.subscriptions.filter(Q(trial_start__isnull=False) | Q(trial_end__isnull=False)).exists()


def _trial_end(organization: Organization) -> int | None:
    """0 (no trial, whatever the item price says) after an earlier trial; else None: Chargebee applies the
    item price's own trial period, the one the page shows from the mirror (months included)."""
    return 0 if had_trial(organization) else None


def _opened(hosted: HostedRedirect) -> dict[str, str]:
    """What the audit trail keeps of a hosted page: the local subscription, never the page's id or URL."""
    return {"subscription_id": hosted.subscription_id}


@audit.billing_action("subscribe", asked=("reference_id", "plan_id", "seats"), answer=_opened)
def start_checkout(
    context: BillingContext | None, *, reference_id: str | None = None, plan_id: object = None, seats: object = None
) -> HostedRedirect:
    """Open a Chargebee hosted checkout for a new subscription of the organization.

    Two Chargebee calls when the customer exists (its meta_data, the page);
    one more to create the customer first. On failure the waiting row stays,
    consistent with the customer's ``pendingSubscriptionId``, and is reused.
    """
    organization = authorize_reference(context, _reference(context, reference_id), Action.SUBSCRIBE)
    plan, quantity = _choose(plan_id, seats)
    if organization.subscriptions.filter(LIVE).exists():
        raise BillingProblem(
            _("This organization already has a subscription: change its plan or seats instead."), status=409
        )
    throttle(context, organization)
    try:
        organization = ensure_customer(organization.id, organization.display_name)
    except OrganizationDeleted as exc:
        raise BillingDenied(_("This organization was deleted; its billing can no longer change.")) from exc
    except ChargebeeError as exc:
        raise vendor_problem(exc) from exc
    subscription = _waiting_row(organization, plan, quantity)
    gateway = get_gateway()
    try:
        customer = gateway.update_customer(
            organization.chargebee_customer_id, meta_data=customer_meta_data(organization.id, subscription.id)
        )
        note_customer_version(organization.id, customer)
        with transaction.atomic():  # its card_status and details too, under the organization's lock
            apply_customer(Organization.objects.locked().get(pk=organization.pk), customer)
        page = gateway.checkout_new_for_items(
            customer_id=organization.chargebee_customer_id,
            subscription_id=subscription.id,
            item_price_id=plan.id,
            quantity=quantity,
            redirect_url=absolute_url("orgbilling:subscription-success", subscriptionId=subscription.id),
            cancel_url=absolute_url("orgbilling:billing"),
            trial_end=_trial_end(organization),
            gateway_account_id=conf.get("CHARGEBEE_GATEWAY_ACCOUNT_ID"),
        )
    except ChargebeeError as exc:
        raise vendor_problem(exc) from exc
    record_page(context, OpenedPage.Kind.CHECKOUT, page["id"], subscription)
    return HostedRedirect(page["url"], subscription.id)


@audit.billing_action("change", asked=("subscription_id", "plan_id", "seats"), answer=_opened)
def change_subscription(
    context: BillingContext | None, *, subscription_id: object, plan_id: object = None, seats: object = None
) -> HostedRedirect:
    """Open a Chargebee hosted page changing the plan or seats of a live subscription (one call)."""
    subscription = _own_subscription(require_organization(context), subscription_id)
    organization = authorize_reference(context, subscription.organization_id, Action.CHANGE)
    if not Subscription.objects.filter(LIVE, pk=subscription.pk).exists():
        raise BillingProblem(_("This subscription has ended: subscribe again instead."), status=409)
    currency = subscription.currency or getattr(plans.describe(subscription.plan_id), "currency", "")
    chosen_seats = subscription.seats if seats in (None, "") else seats
    plan, quantity = _choose(plan_id or subscription.plan_id, chosen_seats, currency)  # its currency cannot change
    if (plan.id, quantity) == (subscription.plan_id, subscription.seats):
        raise BillingProblem(_("That is already the subscription's plan and number of seats."), status=400)
    throttle(context, organization)
    check_seat_floor(subscription, quantity)
    return open_change_page(context, subscription, plan.id, quantity, get_gateway())


def open_change_page(
    context: BillingContext,
    subscription: Subscription,
    item_price_id: str,
    quantity: int,
    gateway: ChargebeeGateway,
) -> HostedRedirect:
    """Chargebee's hosted page that makes this change and takes its payment (one call), recorded as opened.

    Authorization, the throttle and the seat floor are the caller's, done before.
    """
    try:
        page = gateway.checkout_existing_for_items(
            subscription_id=subscription.chargebee_subscription_id,
            item_price_id=item_price_id,
            quantity=quantity,
            redirect_url=absolute_url("orgbilling:subscription-success", subscriptionId=subscription.id),
            cancel_url=absolute_url("orgbilling:billing"),
            gateway_account_id=conf.get("CHARGEBEE_GATEWAY_ACCOUNT_ID"),
        )
    except ChargebeeError as exc:
        raise vendor_problem(exc) from exc
    record_page(context, OpenedPage.Kind.CHANGE, page["id"], subscription)
    return HostedRedirect(page["url"], subscription.id)


def complete_checkout(
    context: BillingContext | None, *, subscription_id: object, hosted_page_id: object
) -> CheckoutReturn:
    """Apply what a finished hosted page (new or change) says, then acknowledge it.

    Only a page recorded when it was opened is retrieved (404 otherwise, with
    no Chargebee call). It is never refused to the person coming back: no
    throttle, and no session needed (the unguessable page id, valid three
    hours, is the proof); the caller asks for a sign-in afterwards when the
    session is not the payer's organization's. Its first return makes the
    calls; later ones change nothing. Works whether the webhook came first,
    later or never. A subscription paid for a deleted organization is
    cancelled at once with a full refund.
    """
    if not isinstance(hosted_page_id, str) or not hosted_page_id:
        raise BillingProblem(_("Chargebee did not say which checkout finished."), status=400)
    kinds = (OpenedPage.Kind.CHECKOUT, OpenedPage.Kind.CHANGE)
    opened = OpenedPage.objects.filter(vendor_id=hosted_page_id, kind__in=kinds).select_related("organization").first()
    if opened is None or subscription_id not in (None, "", opened.subscription_id):
        raise NotFound(_("This checkout does not belong to your organization."))
    organization = opened.organization
    signed_in = context is not None and context.organization_id == organization.id
    now = timezone.now()
    if not OpenedPage.objects.filter(pk=opened.pk, returned_at__isnull=True).update(returned_at=now):
        return CheckoutReturn(Returned.ALREADY_HANDLED, organization, signed_in)
    gateway = get_gateway()
    try:
        page = gateway.retrieve_hosted_page(hosted_page_id)
    except ChargebeeError as exc:
        OpenedPage.objects.filter(pk=opened.pk).update(returned_at=None)  # a later return may try again
        if exc.api_error_code == "resource_not_found":
            raise NotFound(_("Chargebee has no record of this checkout.")) from exc
        raise vendor_problem(exc) from exc
    content = page.get("content") or {}
    snapshot = content.get("subscription") if isinstance(content, dict) else None
    if page.get("state") not in DONE_STATES or not isinstance(snapshot, dict):
        if _subscribed_elsewhere(opened):
            return CheckoutReturn(Returned.ALREADY_SUBSCRIBED, organization, signed_in)
        raise BillingProblem(_("The checkout was not completed, so nothing changed."), status=409)
    customer_id = organization.chargebee_customer_id
    row = opened.subscription
    ours = row is not None and snapshot.get("id") in (row.id, row.chargebee_subscription_id)
    if not ours or not customer_id or snapshot.get("customer_id") != customer_id:
        raise NotFound(_("This checkout does not belong to your organization."))
    result = _apply(snapshot, content.get("customer"))
    if page["state"] == "succeeded":
        try:
            gateway.acknowledge_hosted_page(hosted_page_id)
        except ChargebeeError as exc:  # the result is applied; acknowledging is bookkeeping
            logger.warning("could not acknowledge a hosted page: %s", exc.summary)
    if not result.cancel_pending:
        # The change this return brings is committed: its next charge now (inline; queue mode queued it), once.
        refresh_after_change(result.subscription.pk)
        return CheckoutReturn(Returned.APPLIED, organization, signed_in)
    try:
        cancel_with_refund(result.subscription.pk)
    except ChargebeeError:  # logged there; the intent is recorded: the webhook's retry and every sync try again
        return CheckoutReturn(Returned.ORGANIZATION_DELETED, organization, signed_in, cancelled=False)
    return CheckoutReturn(Returned.ORGANIZATION_DELETED, organization, signed_in)


def _subscribed_elsewhere(opened: OpenedPage) -> bool:
    """Whether the subscription this unpaid page was for exists anyway (another tab's page paid for it).

    All tabs share one checkout row, whose id Chargebee takes once; when that
    payment's return or webhook has not arrived yet, Chargebee is asked.
    """
    if Subscription.objects.filter(LIVE, pk=opened.subscription_id).exists():
        return True
    if opened.kind != OpenedPage.Kind.CHECKOUT:
        return False
    try:
        current = get_gateway().retrieve_subscription(opened.subscription_id)
    except ChargebeeError:
        return False
    if current["subscription"].get("customer_id") != opened.organization.chargebee_customer_id:
        return False
    _apply(current["subscription"], current["customer"])
    return Subscription.objects.filter(LIVE, pk=opened.subscription_id).exists()


@audit.billing_action("portal", asked=("reference_id",))  # the answer is the portal's secret URL: not kept
def open_portal(context: BillingContext | None, *, reference_id: str | None = None) -> str:
    """A Chargebee customer-portal URL (single use, valid an hour, never stored) returning to our resync."""
    organization = authorize_reference(context, _reference(context, reference_id), Action.PORTAL)
    if not organization.chargebee_customer_id:
        raise BillingProblem(_("There is no billing account yet: subscribe first."), status=409)
    throttle(context, organization)
    try:
        session = get_gateway().create_portal_session(
            customer_id=organization.chargebee_customer_id, redirect_url=absolute_url("orgbilling:portal-return")
        )
    except ChargebeeError as exc:
        raise vendor_problem(exc) from exc
    record_page(context, OpenedPage.Kind.PORTAL, session["id"])
    return session["access_url"]


def return_from_portal(context: BillingContext | None) -> int | None:
    """Re-read the organization's subscriptions from Chargebee (one list call) and apply each.

    Run when the portal hands the user back, so a cancellation or seat change
    made there shows at once. It costs that call only for a portal session
    this user opened and has not come back from yet; any other visit (a
    member, a refresh) makes no call and returns None. Never throttled: the
    opening was counted. Returns how many subscriptions were read.
    """
    organization = authorize_reference(context, _reference(context, None), Action.SYNC)
    sessions = OpenedPage.objects.filter(
        kind=OpenedPage.Kind.PORTAL,
        organization=organization,
        user_id=context.user_id,
        opened_at__gte=timezone.now() - PORTAL_SESSION_LIFETIME,
    )
    with first_return(sessions) as first:
        if not first:
            return None
        if not organization.chargebee_customer_id:
            return 0
        try:
            entries, _ = get_gateway().list_subscriptions_page(customer_id=organization.chargebee_customer_id)
        except ChargebeeError as exc:
            raise vendor_problem(exc) from exc
    applied = [_apply(entry["subscription"], entry.get("customer")) for entry in entries]
    cancel_pending(organization)
    for result in applied:  # a change made in the portal: its next charge (no call for an unchanged one)
        if result.applied and not result.cancel_pending:
            refresh_after_change(result.subscription.pk)
    return len(entries)
