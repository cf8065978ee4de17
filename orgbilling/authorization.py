"""Who may do what to an organization's billing, and how often Chargebee may be called for it.

Every service runs ``authorize_reference`` before it calls Chargebee, so a
view cannot forget it: the billing reference must be the signed-in user's own
organization, and changes (subscribe, change plan or seats, portal) need a
billing-manager role or permission. A project hook can deny more (delinquent
organizations, trial abuse) without touching Chargebee.

``throttle`` then spends one unit of a budget: a Chargebee test site allows
about 150 calls a minute for all tenants together, so one tenant clicking or
scripting must not starve the others. Billing managers share their
organization's budget; anyone else spends a budget of their own, so a member
can never use up the managers'. Returns from Chargebee's pages are never
throttled: they cost a call only once per page or portal session opened
(``checkout``), which the opening action already counted.
"""

from __future__ import annotations

import math
import time
from enum import StrEnum

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import conf
from . import throttle as counter
from .errors import BillingDenied, NotSignedIn, Throttled
from .middleware import BillingContext
from .models import Organization

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class Action(StrEnum):
    VIEW = "view"  # read the local billing state
    SUBSCRIBE = "subscribe"
    CHANGE = "change"  # plan or seats
    PORTAL = "portal"
    SYNC = "sync"  # pull the organization's state from Chargebee (checkout success, portal return)
    INVOICES = "invoices"  # list invoices and download their PDFs (they carry the billing address)
    PAY = "pay"  # pay the dues now on Chargebee's collect_now page
    PAYMENT_METHOD = "payment_method"  # replace the card on Chargebee's manage_payment_sources page
    BILLING_DETAILS = "billing_details"  # company, address, VAT or tax id, billing email
    CANCEL = "cancel"  # cancel at the end of the term, or keep a subscription that was to cancel


CHANGES_BILLING = frozenset({Action.SUBSCRIBE, Action.CHANGE, Action.PORTAL, Action.CANCEL})
# Billing-manager only; unlike changes, still allowed once the organization is deleted.
MANAGERS_ONLY = {
    Action.INVOICES: gettext_lazy("Ask a billing manager for invoices."),
    Action.PAY: gettext_lazy("Ask a billing manager to pay."),
    Action.PAYMENT_METHOD: gettext_lazy("Ask a billing manager to update the payment method."),
    Action.BILLING_DETAILS: gettext_lazy("Ask a billing manager to change the billing details."),
}


def require_organization(context: BillingContext | None) -> Organization:
    """The signed-in user's organization, or the refusal that fits (401, then 403)."""
    if context is None:
        raise NotSignedIn(_("Sign in to manage billing."))
    if context.organization is None:
        raise BillingDenied(_("Organization context required for billing"))
    return context.organization


def is_billing_manager(context: BillingContext) -> bool:
    """Whether the user holds a configured billing-manager role or permission."""
    roles = set(conf.get_list("ORGBILLING_BILLING_MANAGER_ROLES"))
    permissions = set(conf.get_list("ORGBILLING_BILLING_MANAGER_PERMISSIONS"))
    return bool(roles.intersection(context.roles) or permissions.intersection(context.permissions))


def authorize_reference(context: BillingContext | None, reference_id: str, action: Action) -> Organization:
    """Return the organization if ``context`` may perform ``action`` on ``reference_id``.

    Raises ``NotSignedIn`` (401) or ``BillingDenied`` (403). The hook named by
    ``ORGBILLING_AUTHORIZATION_HOOK`` is called as ``hook(context,
    reference_id, action)`` once the built-in rules pass; it denies by
    returning False or by raising ``BillingDenied`` with its own message.
    """
    organization = require_organization(context)
    if reference_id != context.organization_id:
        raise BillingDenied(_("You can only see and change the billing of the organization you are signed in to."))
    if action in MANAGERS_ONLY and not is_billing_manager(context):
        raise BillingDenied(str(MANAGERS_ONLY[action]))
    if action in CHANGES_BILLING:
        if not is_billing_manager(context):
            raise BillingDenied(_("Only billing managers of your organization can change its billing."))
        if organization.is_deleted:
            raise BillingDenied(_("This organization was deleted; its billing can no longer change."))
    hook = conf.get("ORGBILLING_AUTHORIZATION_HOOK")
    if hook and import_string(hook)(context, reference_id, action) is False:
        raise BillingDenied(_("This billing action is not allowed for your organization."))
    return organization


def throttle_rate() -> tuple[int, int] | None:
    """``ORGBILLING_THROTTLE_RATE`` as (actions, period in seconds); None when throttling is off."""
    rate = conf.get("ORGBILLING_THROTTLE_RATE")
    if not rate:
        return None
    count, _, period = str(rate).partition("/")
    try:
        return int(count), PERIODS[period.strip().lower()]
    except (KeyError, ValueError):
        raise ImproperlyConfigured(
            f"ORGBILLING_THROTTLE_RATE {rate!r} is not like '10/minute' (second, minute, hour or day)."
        ) from None


def throttle(context: BillingContext, organization: Organization) -> None:
    """Count one Chargebee-calling action of ``context``'s user; raise ``Throttled`` over the rate.

    A fixed window per period, counted atomically across processes
    (``orgbilling.throttle``): Redis, or a database row.
    """
    rate = throttle_rate()
    if rate is None:
        return
    limit, period = rate
    now = time.time()
    window = int(now // period)
    budget = organization.id if is_billing_manager(context) else f"{organization.id}:user:{context.user_id}"
    if counter.incr(f"orgbilling:throttle:{budget}:{window}", period) > limit:
        raise Throttled(retry_after=max(1, math.ceil((window + 1) * period - now)))
