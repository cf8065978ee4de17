"""What the sandbox vendors send to the app: Chargebee events with Basic Auth, signed Scalekit events.

The Scalekit signature is written out here rather than borrowed from
orgbilling: the sandbox plays the vendor, so a bug in the app's check must
not be mirrored by the sender and go unnoticed. The scheme is Standard
Webhooks: HMAC-SHA256 over ``"{id}.{timestamp}.{body}"`` with the base64 key
after ``whsec_``, sent as ``webhook-signature: v1,<base64>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

from sandbox.scalekit_directory import rfc3339_now, scalekit_id
from sandbox.webhook_sender import Delivery

ORGANIZATION_EVENT_NAMES = {
    "organization.created": "Organization Created",
    "organization.updated": "Organization Updated",
    "organization.deleted": "Organization Deleted",
}
ORGANIZATION_FIELDS = ("create_time", "deleted_at", "display_name", "external_id", "id", "metadata", "region_code")


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` (empty ones left out) appended, as vendors send browsers back to the app."""
    params = {key: value for key, value in params.items() if value}
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def _first(value: str | list[str]) -> str:
    """The current credential of a rotatable setting ("new,old" or a list)."""
    values = value.split(",") if isinstance(value, str) else value
    return values[0].strip()


def chargebee_delivery(event: dict[str, Any]) -> Delivery:
    """A Chargebee event as its webhook: the event JSON, HTTP Basic Auth, to the app's endpoint."""

    def headers(body: bytes) -> dict[str, str]:
        user = _first(settings.CHARGEBEE_WEBHOOK_USERNAME)
        password = _first(settings.CHARGEBEE_WEBHOOK_PASSWORD)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Content-Type": "application/json", "Authorization": f"Basic {token}"}

    url = settings.SANDBOX_WEBHOOK_URLS["chargebee"]
    return Delivery("chargebee", event["id"], event["event_type"], url, json.dumps(event).encode(), headers)


def organization_event(event_type: str, organization: dict[str, Any]) -> dict[str, Any]:
    """An ``organization.*`` event shaped like Scalekit's published samples."""
    data = {key: organization.get(key) for key in ORGANIZATION_FIELDS}
    if not data["deleted_at"]:
        del data["deleted_at"]  # only deletions carry it
    data["update_time"] = organization["update_time"]
    data["settings"] = {"features": [{"enabled": True, "name": "sso"}, {"enabled": False, "name": "dir_sync"}]}
    return {
        "spec_version": "1",
        "id": scalekit_id("evt_"),
        "type": event_type,
        "object": "Organization",
        "occurred_at": rfc3339_now(),
        "environment_id": getattr(settings, "SANDBOX_SCALEKIT_ENVIRONMENT_ID", "env_sandbox"),
        "organization_id": organization["id"],
        "data": data,
        "display_name": ORGANIZATION_EVENT_NAMES[event_type],
    }


MEMBERSHIP_EVENT_NAMES = {
    "user.organization_membership_created": "User Organization Membership Created",
    "user.organization_membership_deleted": "User Organization Membership Deleted",
    "user.organization_invitation": "User Organization Invitation",
}


def membership_event(event_type: str, organization: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """A membership event shaped like Scalekit's samples: the organization and the user, no membership status."""
    organization_data = {key: organization.get(key) for key in ORGANIZATION_FIELDS if key != "deleted_at"}
    organization_data["update_time"] = organization["update_time"]
    user_data = {
        "id": user["id"],
        "email": user["email"],
        "external_id": None,
        "metadata": {},
        "create_time": user.get("create_time"),
        "update_time": rfc3339_now(),
        "user_profile": {"given_name": user["given_name"], "family_name": user["family_name"], "name": user["name"]},
    }
    return {
        "spec_version": "1",
        "id": scalekit_id("evt_"),
        "type": event_type,
        "object": "OrgMembership",
        "occurred_at": rfc3339_now(),
        "environment_id": getattr(settings, "SANDBOX_SCALEKIT_ENVIRONMENT_ID", "env_sandbox"),
        "organization_id": organization["id"],
        "data": {"organization": organization_data, "user": user_data},
        "display_name": MEMBERSHIP_EVENT_NAMES[event_type],
    }


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def scalekit_delivery(event: dict[str, Any]) -> Delivery:
    """A Scalekit event as its webhook, signed at each attempt with the current webhook secret."""
    msg_id = "msg_" + secrets.token_hex(12)  # one id for the message, kept across retries

    def headers(body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        signature = standard_webhooks_signature(_first(settings.SCALEKIT_WEBHOOK_SECRET), msg_id, timestamp, body)
        return {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature,
        }

    url = settings.SANDBOX_WEBHOOK_URLS["scalekit"]
    return Delivery("scalekit", event["id"], event["type"], url, json.dumps(event).encode(), headers)
