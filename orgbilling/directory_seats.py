"""Seats for apps that keep their own users (``ORGBILLING_SEAT_SOURCE = "directory"``): SCIM directory users.

Scalekit does not enforce a seat cap on directory sync, so orgbilling decides:

* One row per directory user (``DirectoryUser``), written only through
  ``apply_directory_user`` from signed ``organization.directory.user_*``
  webhooks and from ``orgbilling_sync``'s listing. Each write carries a time
  (the event's ``occurred_at``, the listing's ``updated_at``, in ns); an older
  one never overrides a newer one, so redeliveries and reordering cannot drift.
* The organization's row is locked while a user arrives, so concurrent
  arrivals are decided one at a time: a user who would exceed the stored seat
  limit is recorded as **blocked** and ``seat_limit_exceeded`` is sent after
  commit (the webhook still answers 200: a non-2xx would make Scalekit retry a
  deliberate block).
* When seats are added or users leave, blocked users are released in arrival
  order with ``seat_released``.
* The organization's ``seats_used`` is the number of seated users, so the page,
  the API and the seat floor read directory seats like membership seats.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from . import conf, signals
from .models import DirectoryUser, Organization

logger = logging.getLogger(__name__)


def directory_mode() -> bool:
    return conf.get("ORGBILLING_SEAT_SOURCE") == "directory"


RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def nanoseconds(value: object) -> int:
    """An RFC 3339 time with up to nanoseconds (Scalekit's) as integer ns since the epoch; ValueError if not one."""
    match = RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not an RFC 3339 time")
    seconds, fraction, zone = match.groups()
    moment = datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    return int(moment.timestamp()) * 10**9 + int((fraction or "").ljust(9, "0"))


def _seated(organization: Organization):
    return organization.directory_users.filter(active=True, deleted_at__isnull=True, blocked=False)


def _send(signal: Signal, organization_id: str, **arguments) -> None:
    def send() -> None:
        organization = Organization.objects.get(pk=organization_id)
        for receiver, response in signal.send_robust(sender=Organization, organization=organization, **arguments):
            if isinstance(response, Exception):
                logger.error("%r failed for %s", receiver, organization_id, exc_info=response)

    transaction.on_commit(send)


def apply_directory_user(
    organization_id: str, user_id: str, *, email: str | None, active: bool, deleted: bool, event_time: int
) -> str:
    """Apply one state of a directory user; returns "stale", "admitted", "blocked", "left" or "updated".

    Raises ``Organization.DoesNotExist`` for an organization not known here.
    """
    with transaction.atomic():
        organization = Organization.objects.locked().get(pk=organization_id)
        user = DirectoryUser.objects.select_for_update().filter(pk=user_id).first()
        if user is not None and user.event_time >= event_time:
            return "stale"
        wanted_before = user is not None and user.wants_seat
        user = user or DirectoryUser(id=user_id, organization=organization)
        user.email = email if email is not None else user.email
        user.active, user.event_time = active, event_time
        user.deleted_at = (user.deleted_at or timezone.now()) if deleted else None
        outcome = "updated"
        if user.wants_seat and not wanted_before:
            user.arrived_at = timezone.now()
            used, limit = _seated(organization).exclude(pk=user_id).count(), organization.seat_limit
            user.blocked = limit is not None and used >= limit
            outcome = "blocked" if user.blocked else "admitted"
            if user.blocked:
                _send(signals.seat_limit_exceeded, organization.pk, used=used, limit=limit, directory_user=user)
        elif not user.wants_seat:
            outcome, user.blocked = ("left" if wanted_before else "updated"), False
        user.save()
        release_blocked(organization)
        return outcome


def release_blocked(organization: Organization) -> int:
    """Seat blocked users in arrival order while seats are free; store the count. Call it holding the org lock."""
    limit = organization.seat_limit
    seated = _seated(organization).count()
    waiting = organization.directory_users.filter(active=True, deleted_at__isnull=True, blocked=True)
    free = None if limit is None else max(0, limit - seated)
    released = list(waiting.order_by("arrived_at", "pk")[:free] if free is not None else waiting)
    for user in released:
        user.blocked = False
        user.save(update_fields=["blocked", "seen_at"])
        _send(signals.seat_released, organization.pk, directory_user=user)
    organization.seats_used, organization.seats_pending = seated + len(released), 0
    organization.seats_counted_at = timezone.now()
    organization.save(update_fields=["seats_used", "seats_pending", "seats_counted_at"])
    return len(released)


def seats_changed(organization: Organization) -> None:
    """The seat limit changed (refresh_limit, holding the lock): in directory mode, release who now fits."""
    if directory_mode():
        release_blocked(organization)


def sync_directory(organization_id: str, *, since: datetime | None = None, client=None) -> list[str]:
    """Repair one organization's table from Scalekit's listing; returns what changed (one line each).

    Every listed user is applied at its ``updated_at`` (so it loses to a newer
    event already applied); ``since`` lists only users updated after it.
    A full listing also deletes rows of users no longer listed, at the
    listing's start. Raises ``ScalekitError`` when a list call fails (nothing
    is called gone then).
    """
    from .scalekit_management import get_client

    client = client or get_client()
    started = time.time_ns()
    listed: set[str] = set()
    changes: list[str] = []
    # Scalekit's own format (UTC, nanoseconds), which also compares as text.
    updated_after = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z") if since else None
    for directory in client.list_directories(organization_id):
        for page in client.iter_directory_users(organization_id, directory["id"], updated_after=updated_after):
            for entry in page:
                if not isinstance(entry.get("id"), str):
                    continue
                listed.add(entry["id"])
                at = nanoseconds(entry.get("updated_at") or "") if entry.get("updated_at") else started
                outcome = apply_directory_user(
                    organization_id,
                    entry["id"],
                    email=entry.get("email"),
                    active=entry.get("active") is not False,
                    deleted=False,
                    event_time=at,
                )
                if outcome != "stale":
                    changes.append(f"{outcome}: {entry['id']} ({organization_id})")
    if since is None:
        gone = DirectoryUser.objects.filter(organization_id=organization_id, deleted_at__isnull=True)
        for user_id in gone.exclude(pk__in=listed).values_list("pk", flat=True):
            if (
                apply_directory_user(
                    organization_id, user_id, email=None, active=False, deleted=True, event_time=started
                )
                != "stale"
            ):
                changes.append(f"gone from the directory: {user_id} ({organization_id})")
    return changes
