"""Organization and membership changes made in the fake Scalekit's dashboard, each announced to the app by webhook.

Like Scalekit, an expiring invite sends nothing: only a recount (the app's sync) notices.

The sandbox console and the demo setup command both go through here, so the
app learns about every organization the way it would from Scalekit.
"""

from __future__ import annotations

from typing import Any

from sandbox import outbound, runtime
from sandbox.scalekit_directory import ACTIVE, INVITE_EXPIRED, PENDING_INVITE

Organization = dict[str, Any]


def announce(event_type: str, organization: Organization) -> None:
    """Queue the signed ``organization.*`` webhook for this organization state."""
    event = outbound.organization_event(event_type, organization)
    runtime.sender().send(outbound.scalekit_delivery(event))


def create(display_name: str, external_id: str = "", org_id: str | None = None) -> Organization:
    organization = runtime.directory().create_organization(display_name, external_id, org_id)
    announce("organization.created", organization)
    return organization


def rename(org_id: str, display_name: str) -> Organization:
    organization = runtime.directory().rename_organization(org_id, display_name)
    announce("organization.updated", organization)
    return organization


def delete(org_id: str) -> Organization:
    organization = runtime.directory().delete_organization(org_id)
    announce("organization.deleted", organization)
    return organization


def _announce_membership(event_type: str, org_id: str, user: dict) -> None:
    event = outbound.membership_event(event_type, runtime.directory().organization(org_id), user)
    runtime.sender().send(outbound.scalekit_delivery(event))


def add_member(org_id: str, email: str) -> dict:
    """A new active member; refused (``DirectoryError``) beyond the organization's cap."""
    user = runtime.directory().join(org_id, email, ACTIVE)
    _announce_membership("user.organization_membership_created", org_id, user)
    return user


def invite(org_id: str, email: str) -> dict:
    """A pending invite; refused (``DirectoryError``) beyond the organization's cap."""
    user = runtime.directory().join(org_id, email, PENDING_INVITE)
    _announce_membership("user.organization_invitation", org_id, user)
    return user


def remove_member(org_id: str, user_id: str) -> dict:
    user = runtime.directory().set_membership_status(org_id, user_id, None)
    _announce_membership("user.organization_membership_deleted", org_id, user)
    return user


def expire_invite(org_id: str, user_id: str) -> dict:
    """The invite lapses: it stops counting against the cap, and no webhook says so."""
    return runtime.directory().set_membership_status(org_id, user_id, INVITE_EXPIRED)
