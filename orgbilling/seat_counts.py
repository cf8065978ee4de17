"""Seats used, counted from Scalekit's members list, and the seat floor a decrease may not cross.

Scalekit's membership webhooks carry no membership status, so they only mark
the organization's count stale (``membership_changed``); the count itself
comes from ``GET /api/v1/organizations/{id}/users``: memberships of *this*
organization that are ``ACTIVE`` (members) or ``PENDING_INVITE`` (invites),
the two Scalekit counts against the cap. A recount is claimed first
(``seats_recount_claimed_at``), so however many events arrive, one pass runs
at a time per organization: in queue mode one task, inline at most one pass
per ``ORGBILLING_SEAT_RECOUNT_INTERVAL`` seconds, the rest left to
``orgbilling_sync``'s seat pass (which also catches what Scalekit sends no
event for: an expired invite, a blocked member). Page views never count.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import conf
from .directory_seats import directory_mode
from .errors import BillingProblem
from .models import Organization, Subscription
from .scalekit_management import ScalekitError, ScalekitManagement, configured, get_client
from .seat_limits import wanted_limit

logger = logging.getLogger(__name__)

ACTIVE, PENDING_INVITE = "ACTIVE", "PENDING_INVITE"


@dataclass(frozen=True)
class SeatCount:
    used: int
    pending: int
    counted_at: datetime


def count_members(organization_id: str, client: ScalekitManagement | None = None) -> SeatCount:
    """List the organization's members and store the count (newer counts are never overwritten).

    Raises ``ScalekitError`` when the list cannot be read; nothing is stored then.
    """
    started = timezone.now()
    used = pending = 0
    for page in (client or get_client()).iter_organization_users(organization_id):
        for user in page:
            for membership in user.get("memberships") or []:
                if not isinstance(membership, dict) or membership.get("organization_id") != organization_id:
                    continue
                status = membership.get("membership_status")
                used += status == ACTIVE
                pending += status == PENDING_INVITE
    newest = Q(seats_counted_at__isnull=True) | Q(seats_counted_at__lte=started)
    Organization.objects.filter(newest, pk=organization_id).update(
        seats_used=used, seats_pending=pending, seats_counted_at=started
    )
    # An event after the list began may not be in it: the count stays stale for the next pass.
    Organization.objects.filter(pk=organization_id, seats_stale_since__lte=started).update(seats_stale_since=None)
    return SeatCount(used, pending, started)


def membership_changed(organization: Organization) -> None:
    """A membership webhook: the count is stale; a recount is claimed and run after commit."""
    now = timezone.now()
    Organization.objects.filter(pk=organization.pk, seats_stale_since__isnull=True).update(seats_stale_since=now)
    queued = conf.get("ORGBILLING_PROCESSING") == "queue"
    interval = conf.get("ORGBILLING_SEAT_RECOUNT_LEASE" if queued else "ORGBILLING_SEAT_RECOUNT_INTERVAL")
    free = Q(seats_recount_claimed_at__isnull=True) | Q(seats_recount_claimed_at__lt=now - timedelta(seconds=interval))
    if not Organization.objects.filter(free, pk=organization.pk).update(seats_recount_claimed_at=now):
        return  # a pass is queued or ran within the interval: it, or the sync, counts this change
    if queued:
        from .seat_tasks import recount_seats

        transaction.on_commit(partial(recount_seats.enqueue, organization.pk))
    else:
        transaction.on_commit(partial(_after_answer, organization.pk))


# Inline recounts claimed while a request is being answered run once it is answered (the webhook's 2xx does not
# wait for Scalekit's list); outside a request (replay, a command) they run at once.
_answering = threading.local()


@receiver(request_started)
def _request_started(**kwargs) -> None:
    _answering.pending = []


def _after_answer(organization_id: str) -> None:
    pending = getattr(_answering, "pending", None)
    if pending is None:
        recount_quietly(organization_id)
    else:
        pending.append(organization_id)


@receiver(request_finished)
def _request_finished(**kwargs) -> None:
    pending, _answering.pending = getattr(_answering, "pending", None), None
    if pending:
        for organization_id in pending:
            recount_quietly(organization_id)
        close_old_connections()  # the request's own cleanup already ran; do it again for this work


def recount_quietly(organization_id: str) -> SeatCount | None:
    """A recount whose failure is only logged: the count stays stale for the next pass or the sync."""
    try:
        return count_members(organization_id)
    except ScalekitError as error:
        logger.warning("seats of %s not counted: %s", organization_id, error)
        return None


def check_seat_floor(subscription: Subscription, seats: int, client: ScalekitManagement | None = None) -> None:
    """Refuse (400) a seat decrease that would leave fewer seats than members and pending invites.

    Increases are never refused. With no stored count the members are counted
    first; when Scalekit cannot be reached the decrease is refused. Without
    Scalekit credentials nothing is counted or capped, so nothing is refused.
    Call it before any Chargebee call of a change (page, JSON API, previews).
    """
    if seats >= subscription.seats or not configured():
        return
    organization = Organization.objects.get(pk=subscription.organization_id)
    if organization.seats_used is None and not directory_mode():  # directory seats are counted as they change
        try:
            count_members(organization.pk, client)
        except ScalekitError as error:
            logger.warning("seat floor of %s unknown: %s", organization.pk, error)
            raise BillingProblem(
                _("Seats cannot be reduced right now: the number of members could not be checked. Try again later."),
                status=400,
            ) from error
        organization.refresh_from_db()
    limit = wanted_limit(organization)
    if limit is None:
        return
    taken = organization.seats_taken or 0
    # The seats the other entitling subscriptions keep, whatever this one becomes.
    others = limit - subscription.seats if subscription.entitles else limit
    if others + seats >= taken:
        return
    used, pending = organization.seats_used or 0, organization.seats_pending or 0
    members = ngettext("%(count)d member", "%(count)d members", used) % {"count": used}
    invites = ngettext("%(count)d pending invite", "%(count)d pending invites", pending) % {"count": pending}
    raise BillingProblem(
        _("%(organization)s has %(members)s and %(invites)s; keep at least %(seats)d seats or remove some.")
        % {"organization": organization, "members": members, "invites": invites, "seats": taken - others},
        status=400,
    )
