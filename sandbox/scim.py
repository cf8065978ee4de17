"""The fake Scalekit's directory sync (SCIM): each organization's directory and its users, changed from the console.

Each change stamps the user's ``update_time`` and sends the matching
``organization.directory.user_*`` webhook whose ``occurred_at`` is that time,
as Scalekit's directory events do; deleted users are kept (marked) so the
listing can leave them out. Scalekit enforces no seat limit here: the app must.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from sandbox import outbound, runtime
from sandbox.scalekit_directory import DirectoryError, Record, rfc3339_now, scalekit_id

EVENT_NAMES = {
    "organization.directory.user_created": "Directory User Created",
    "organization.directory.user_updated": "Directory User Updated",
    "organization.directory.user_deleted": "Directory User Deleted",
}


def directory(org_id: str) -> Record:
    """The organization's one directory, made on first use."""
    store = runtime.directory().store
    found = store.find("scim_directory", [("organization_id", "is", org_id)])
    if found:
        return found[0]
    runtime.directory().organization(org_id)  # DirectoryError for an unknown organization
    entry = {"id": scalekit_id("dir_"), "organization_id": org_id, "enabled": True, "directory_provider": "OKTA"}
    return store.put("scim_directory", entry)


def users(org_id: str, *, updated_after: str = "", with_deleted: bool = False) -> list[Record]:
    found = runtime.directory().store.find("directory_user", [("organization_id", "is", org_id)])
    found = [
        user for user in found if (with_deleted or not user.get("deleted")) and user["update_time"] > updated_after
    ]
    return sorted(found, key=lambda user: (user["create_time"], user["id"]))


def _save(user: Record, event_type: str) -> Record:
    user = runtime.directory().store.put("directory_user", {**user, "update_time": rfc3339_now()})
    runtime.sender().send(outbound.scalekit_delivery(_event(event_type, user)))
    return user


def _user(user_id: str) -> Record:
    user = runtime.directory().store.get("directory_user", user_id)
    if user is None or user.get("deleted"):
        raise DirectoryError(f"No directory user {user_id}")
    return user


def add(org_id: str, email: str) -> Record:
    now = rfc3339_now()
    user = {
        "id": scalekit_id("diruser_"),
        "organization_id": org_id,
        "directory_id": directory(org_id)["id"],
        "email": email,
        "preferred_username": email,
        "given_name": email.split("@")[0].capitalize(),
        "family_name": "",
        "active": True,
        "create_time": now,
    }
    return _save(user, "organization.directory.user_created")


def set_active(user_id: str, active: bool) -> Record:
    return _save({**_user(user_id), "active": active}, "organization.directory.user_updated")


def remove(user_id: str) -> Record:
    return _save({**_user(user_id), "deleted": True, "active": False}, "organization.directory.user_deleted")


def user_body(user: Record) -> dict[str, Any]:
    """A directory user as the directory users list returns it."""
    keys = ("id", "email", "preferred_username", "given_name", "family_name", "active")
    return {**{key: user.get(key) for key in keys}, "groups": [], "roles": [], "updated_at": user["update_time"]}


def _event(event_type: str, user: Record) -> dict[str, Any]:
    if event_type == "organization.directory.user_deleted":  # Scalekit's deleted event carries only these
        data = {
            "id": user["id"],
            "organization_id": user["organization_id"],
            "dp_id": user["directory_id"],
            "email": user["email"],
        }
    else:
        data = {**user_body(user), "organization_id": user["organization_id"], "dp_id": user["directory_id"]}
    return {
        "spec_version": "1",
        "id": scalekit_id("evt_"),
        "type": event_type,
        "object": "DirectoryUser",
        "occurred_at": user["update_time"],
        "environment_id": getattr(settings, "SANDBOX_SCALEKIT_ENVIRONMENT_ID", "env_sandbox"),
        "organization_id": user["organization_id"],
        "data": data,
        "display_name": EVENT_NAMES[event_type],
    }
