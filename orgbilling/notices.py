"""Notices a host app can show on every page: past due, grace ending, card expiring or expired, seat limit
reached, cancellation scheduled; each links to the place on /billing that resolves it.

Built from rows already loaded: the subscription list (``GET /api/subscription``)
joins the organization's billing profile, so notices cost no query of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from . import plans
from .models import BillingProfile, Organization, Subscription
from .payment_health import past_due
from .payment_sources import card_warning

LIVE_STATUSES = ("in_trial", "active", "non_renewing", "paused")


@dataclass(frozen=True)
class Notice:
    kind: str
    severity: str  # "error", "warning" or "info"
    message: str
    url: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def _day(moment) -> str:
    return date_format(moment, "j F")


def _profile(organization: Organization) -> BillingProfile | None:
    try:
        return organization.billing_profile
    except ObjectDoesNotExist:
        return None


def notices(subscriptions: Iterable[Subscription], today: date | None = None) -> list[Notice]:
    """The notices of the newest live subscription among ``subscriptions`` (its organization and profile joined)."""
    subscription = next((row for row in subscriptions if row.status in LIVE_STATUSES), None)
    if subscription is None:
        return []
    today = today or timezone.localdate()
    billing = reverse("orgbilling:billing")
    organization, found = subscription.organization, []
    dues = past_due(subscription)
    if dues is not None:
        values = {"amount": dues.amount, "day": _day(dues.since) if dues.since else "", "organization": organization}
        if dues.since:
            message = _("A payment of %(amount)s failed on %(day)s; pay now to keep %(organization)s's subscription.")
        else:
            message = _("A payment of %(amount)s failed; pay now to keep %(organization)s's subscription.")
        found.append(Notice("past_due", "error", message % values, f"{billing}#past-due"))
        if dues.grace_ends and not dues.grace_used_up:
            message = _("Without payment, the subscription stops on %(day)s.") % {"day": _day(dues.grace_ends)}
            found.append(Notice("grace_ending", "warning", message, f"{billing}#past-due"))
    warning = card_warning(_profile(organization), today)
    if warning is not None:
        expired = warning.kind == "card_expired"
        if expired:
            message = _("The card on file expired.")
        else:
            message = _("The card on file expires on %(day)s.") % {"day": _day(warning.expires_on)}
        found.append(Notice(warning.kind, "error" if expired else "warning", message, f"{billing}#payment-method"))
    plan = plans.find(subscription.plan_id)
    if plan is not None and subscription.seats >= plan.max_seats:
        message = _("All %(seats)s seats of the plan are in use; it has no more.") % {"seats": subscription.seats}
        found.append(Notice("seat_limit_reached", "info", message, f"{billing}#ob-change"))
    if subscription.cancel_at_period_end:
        ends = subscription.cancelled_at or subscription.current_period_end
        if ends:
            message = _("The subscription cancels on %(day)s.") % {"day": _day(ends)}
        else:
            message = _("The subscription is set to cancel.")
        found.append(Notice("cancellation_scheduled", "warning", message, billing))
    return found


def with_profiles(subscriptions: QuerySet[Subscription]) -> QuerySet[Subscription]:
    """The same rows with their organization and its billing profile joined (no query per row)."""
    return subscriptions.select_related("organization__billing_profile")
