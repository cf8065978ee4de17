"""Organization changes made in the fake Scalekit's dashboard, each announced to the app by webhook.

The sandbox console and the demo setup command both go through here, so the
app learns about every organization the way it would from Scalekit.
"""

from __future__ import annotations

from typing import Any

from sandbox import outbound, runtime

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
