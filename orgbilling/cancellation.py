"""Cancel at the end of the term, and keep a subscription that was to cancel: billing managers, in the app.

Each service authorizes (billing managers only, 403 for anyone else before
anything is read), refuses what cannot apply (409, no Chargebee call, no
budget spent), throttles, then makes one Chargebee call outside any
transaction (RULES 2: there is no local intent to record first, Chargebee's
subscription is the state, and its webhook brings the same answer if this
process dies after the call). The subscription Chargebee returns goes through
``apply_subscription``, the single write path, so the billing page shows the
change at once; keeping the subscription then fetches its next charge.

* ``schedule_cancellation``: ``POST /subscriptions/{id}/cancel_for_items``
  with ``end_of_term=true`` (status ``non_renewing``, ``cancelled_at`` the
  term end), for an ``active`` or ``in_trial`` subscription not already
  cancelling.
* ``keep_subscription``: ``POST /subscriptions/{id}/remove_scheduled_cancellation``.
"""

from __future__ import annotations

from datetime import datetime

from django.utils.formats import date_format
from django.utils.translation import gettext as _

from . import audit
from .authorization import Action, authorize_reference, require_organization, throttle
from .chargebee_gateway import ChargebeeError, get_gateway
from .checkout import _apply, _own_subscription, current_subscription, vendor_problem
from .errors import BillingProblem, NotFound
from .middleware import BillingContext
from .models import Organization, Subscription
from .renewal_estimates import refresh_after_change

Status = Subscription.Status
CANCELLABLE = (Status.ACTIVE, Status.IN_TRIAL)


def term_end(subscription: Subscription) -> datetime | None:
    """When a cancellation at the end of the term takes effect: the current term's (or the trial's) end."""
    return subscription.current_period_end or subscription.trial_end


def _find(organization: Organization, subscription_id: object) -> Subscription:
    """The organization's subscription named (404 for anyone else's), or its current one when none is named."""
    if subscription_id in (None, ""):
        subscription = current_subscription(organization)
        if subscription is None:
            raise NotFound(_("There is no subscription to cancel."))
        return subscription
    return _own_subscription(organization, subscription_id)


def _check_cancellable(subscription: Subscription) -> None:
    """409 for what a cancellation at the end of the term cannot apply to (no call made, no budget spent)."""
    if subscription.cancel_at_period_end:
        ends = subscription.cancelled_at or term_end(subscription)
        day = date_format(ends, "DATE_FORMAT") if ends else ""
        raise BillingProblem(_("This subscription already cancels on %(day)s.") % {"day": day}, status=409)
    if subscription.status not in CANCELLABLE or not subscription.chargebee_subscription_id:
        message = _("Only an active or trial subscription can be cancelled at the end of its term.")
        raise BillingProblem(message, status=409)


def cancellable(context: BillingContext | None, *, subscription_id: object = None) -> Subscription:
    """The subscription a cancellation would end, for the confirmation page (no Chargebee call, no budget).

    Billing managers only: 403 for anyone else before anything is read, then 404, then 409.
    """
    organization = authorize_reference(context, require_organization(context).pk, Action.CANCEL)
    subscription = _find(organization, subscription_id)
    _check_cancellable(subscription)
    return subscription


def _ends(subscription: Subscription) -> dict[str, str]:
    ends = subscription.cancelled_at or term_end(subscription)
    return {"subscription_id": subscription.pk, "cancels_on": ends.isoformat() if ends else ""}


def _refused(error: ChargebeeError) -> BillingProblem:
    if error.api_error_code == "invalid_state_for_request":
        # Changed in Chargebee meanwhile (the portal, another tab): its webhook brings the new state.
        message = _("Chargebee cannot do this for the subscription as it is now; reload the page and try again.")
        return BillingProblem(message, status=409)
    return vendor_problem(error)


@audit.billing_action("cancel", asked=("subscription_id",), answer=_ends)
def schedule_cancellation(context: BillingContext | None, *, subscription_id: object = None) -> Subscription:
    """Cancel the subscription at the end of its term (one Chargebee call); returns the row as applied."""
    organization = authorize_reference(context, require_organization(context).pk, Action.CANCEL)
    subscription = _find(organization, subscription_id)
    _check_cancellable(subscription)
    throttle(context, organization)
    try:
        answer = get_gateway().cancel_at_term_end(subscription.chargebee_subscription_id)
    except ChargebeeError as exc:
        raise _refused(exc) from exc
    _apply(answer["subscription"], answer.get("customer"))
    return Subscription.objects.get(pk=subscription.pk)


@audit.billing_action("keep", asked=("subscription_id",), answer=lambda row: {"subscription_id": row.pk})
def keep_subscription(context: BillingContext | None, *, subscription_id: object = None) -> Subscription:
    """Remove the scheduled cancellation (one Chargebee call, then its next charge); returns the row as applied."""
    organization = authorize_reference(context, require_organization(context).pk, Action.CANCEL)
    subscription = _find(organization, subscription_id)
    if not subscription.cancel_at_period_end or not subscription.chargebee_subscription_id:
        raise BillingProblem(_("This subscription is not scheduled to cancel."), status=409)
    throttle(context, organization)
    try:
        answer = get_gateway().remove_scheduled_cancellation(subscription.chargebee_subscription_id)
    except ChargebeeError as exc:
        raise _refused(exc) from exc
    _apply(answer["subscription"], answer.get("customer"))
    refresh_after_change(subscription.pk)  # committed above; a failure leaves the figure marked stale
    return Subscription.objects.get(pk=subscription.pk)
