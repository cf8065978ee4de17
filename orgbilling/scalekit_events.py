"""Scalekit webhook events: validate the envelope, then map each type to a provisioning step."""

from __future__ import annotations

import re
from datetime import datetime

from . import conf
from .deliveries import Ignored
from .directory_seats import apply_directory_user, directory_mode, nanoseconds
from .event_envelope import decode, envelope, storable
from .models import Organization
from .provisioning import OrganizationDeleted, apply_organization, delete_organization
from .seat_counts import membership_changed

# Scalekit ids look like org_43666332410970707; the id is also the Chargebee customer id, whose charset this is.
ORGANIZATION_ID = re.compile(r"[A-Za-z0-9_.@-]{1,50}")
ORGANIZATION_EVENTS = ("organization.created", "organization.updated", "organization.deleted")
# They carry no membership status: each only makes the organization's seat count stale (seat_counts).
MEMBERSHIP_EVENTS = (
    "user.organization_membership_created",
    "user.organization_membership_updated",
    "user.organization_membership_deleted",
    "user.organization_invitation",
)
# Seats of apps that keep their own users (ORGBILLING_SEAT_SOURCE = "directory"): directory_seats.
DIRECTORY_USER_EVENTS = (
    "organization.directory.user_created",
    "organization.directory.user_updated",
    "organization.directory.user_deleted",
)


class MalformedEvent(ValueError):
    """The body is not a Scalekit event orgbilling can record."""


def parse_event(body: bytes) -> dict:
    """Decode and check a delivery body; raise ``MalformedEvent`` with a short reason."""
    event = envelope(decode(body, MalformedEvent), ("id", "type"), MalformedEvent)
    if event["type"] in ORGANIZATION_EVENTS:
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"].strip():
            raise MalformedEvent("organization event without data.id")
        if not ORGANIZATION_ID.fullmatch(data["id"]):
            raise MalformedEvent("organization id must be 1-50 letters, digits or _-.@ (it becomes the customer id)")
        for key in ("display_name", "external_id", "update_time", "deleted_at"):
            if data.get(key) is not None and not storable(data[key], 255):
                raise MalformedEvent(f"data.{key} is not a string of at most 255 characters")
        for key in ("update_time", "deleted_at"):
            if data.get(key):
                _timestamp(data[key])
    elif event["type"] in MEMBERSHIP_EVENTS:
        _membership_organization(event)
    elif event["type"] in DIRECTORY_USER_EVENTS:
        _directory_user(event)
    return event


def _directory_user(event: dict) -> dict:
    """The checked fields of a directory user event: organization, user id, email, active, event time (ns)."""
    data = event.get("data")
    if not isinstance(data, dict):
        raise MalformedEvent("directory user event without data")
    organization_id = data.get("organization_id") or event.get("organization_id")
    if not isinstance(organization_id, str) or not ORGANIZATION_ID.fullmatch(organization_id):
        raise MalformedEvent("directory user event without a valid organization_id")
    if not storable(data.get("id"), 64) or not data["id"].strip():
        raise MalformedEvent("directory user event without data.id")
    if data.get("email") is not None and not storable(data["email"], 255):
        raise MalformedEvent("data.email is not a string of at most 255 characters")
    active = data.get("active", True)
    if not isinstance(active, bool):
        raise MalformedEvent("data.active is not true or false")
    try:
        event_time = nanoseconds(event.get("occurred_at"))
    except ValueError as exc:
        raise MalformedEvent(f"occurred_at: {exc}") from None
    deleted = event["type"] == "organization.directory.user_deleted"
    return {
        "organization_id": organization_id,
        "user_id": data["id"],
        "email": data.get("email"),
        "active": active and not deleted,
        "deleted": deleted,
        "event_time": event_time,
    }


def _membership_organization(event: dict) -> str:
    """The id of the organization a membership event is about (``data.organization.id``)."""
    data = event.get("data")
    organization = data.get("organization") if isinstance(data, dict) else None
    organization_id = organization.get("id") if isinstance(organization, dict) else None
    if not isinstance(organization_id, str) or not ORGANIZATION_ID.fullmatch(organization_id):
        raise MalformedEvent("membership event without a valid data.organization.id")
    return organization_id


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvent(f"{value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise MalformedEvent(f"{value!r} has no time zone")
    return parsed


def handle_event(event: dict) -> None:
    """Apply one recorded Scalekit event (called by ``deliveries.process_delivery``)."""
    kind = event["type"]
    if kind in MEMBERSHIP_EVENTS:
        _membership(_membership_organization(event))
        return
    if kind in DIRECTORY_USER_EVENTS:
        _directory(_directory_user(event))
        return
    if kind not in ORGANIZATION_EVENTS:
        raise Ignored(f"event type {kind} is not used by orgbilling")
    data = event["data"]
    if kind == "organization.deleted":
        # A webhook attempt stops starting calls in time to answer (or to stay within its lease).
        budget = conf.get("ORGBILLING_VENDOR_TIME_BUDGET")
        delete_organization(data["id"], _timestamp(data.get("deleted_at")), time_budget=budget)
        return
    try:
        applied = apply_organization(
            data["id"],
            display_name=data.get("display_name") or "",
            external_id=data.get("external_id") or "",
            update_time=_timestamp(data.get("update_time")),
        )
    except OrganizationDeleted as exc:
        raise Ignored(str(exc)) from None
    if not applied:
        raise Ignored("stale: an organization snapshot at least as new was already applied")


def _membership(organization_id: str) -> None:
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        raise Ignored(f"membership event for unknown organization {organization_id}")
    if organization.is_deleted:
        raise Ignored(f"membership event for deleted organization {organization_id}")
    membership_changed(organization)


def _directory(change: dict) -> None:
    if not directory_mode():
        raise Ignored('directory seats are off (ORGBILLING_SEAT_SOURCE is not "directory")')
    organization = Organization.objects.filter(pk=change["organization_id"]).first()
    if organization is None or organization.is_deleted:
        state = "unknown" if organization is None else "deleted"
        raise Ignored(f"directory user event for {state} organization {change['organization_id']}")
    organization_id = change.pop("organization_id")
    user_id = change.pop("user_id")
    if apply_directory_user(organization_id, user_id, **change) == "stale":
        raise Ignored("stale: a newer state of this directory user was already applied")
