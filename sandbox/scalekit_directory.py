"""The fake Scalekit's records: organizations, users, authorization codes and refresh tokens.

Kept in the sandbox's own sqlite file through the fake Chargebee's ``Store``
(JSON objects by kind and id), never in the app's database: the app may call
Scalekit while it holds its own locks. Ids look like Scalekit's (``org_``,
``usr_``, ``ses_`` followed by digits).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sandbox.fake_chargebee_store import Store

Record = dict[str, Any]
ROLES = ("admin", "member")
CODE_TTL = 600  # seconds an authorization code may wait for its exchange


ACTIVE, PENDING_INVITE, INVITE_EXPIRED = "ACTIVE", "PENDING_INVITE", "INVITE_EXPIRED"
COUNTED = (ACTIVE, PENDING_INVITE)


def membership_status(user: Record, org_id: str) -> str:
    """A membership's status ("" for none; demo users saved before statuses existed are members)."""
    if org_id not in user["memberships"]:
        return ""
    return (user.get("membership_status") or {}).get(org_id, ACTIVE)


class DirectoryError(Exception):
    """A request names something that does not exist (or no longer does)."""


def scalekit_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice("0123456789") for _ in range(17))


def rfc3339_now() -> str:
    """Scalekit's timestamps: UTC with nanoseconds, e.g. 2025-12-09T09:25:02.025330364Z."""
    now = time.time_ns()
    seconds = datetime.fromtimestamp(now // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{seconds}.{now % 1_000_000_000:09d}Z"


class Directory:
    def __init__(self, path: str) -> None:
        self.store = Store(path)

    # ----- organizations ----------------------------------------------------------------------

    def organizations(self) -> list[Record]:
        return sorted(self.store.find("organization", []), key=lambda org: org["display_name"].lower())

    def organization(self, org_id: str) -> Record:
        org = self.store.get("organization", org_id)
        if org is None:
            raise DirectoryError(f"No organization {org_id}")
        return org

    def create_organization(self, display_name: str, external_id: str = "", org_id: str | None = None) -> Record:
        now = rfc3339_now()
        org = {
            "id": org_id or scalekit_id("org_"),
            "display_name": display_name,
            "external_id": external_id or None,
            "metadata": None,
            "region_code": "US",
            "create_time": now,
            "update_time": now,
        }
        return self.store.put("organization", org)

    def rename_organization(self, org_id: str, display_name: str) -> Record:
        with self.store.transaction():
            org = dict(self.organization(org_id), display_name=display_name, update_time=rfc3339_now())
            return self.store.put("organization", org)

    def delete_organization(self, org_id: str) -> Record:
        with self.store.transaction():
            org = dict(self.organization(org_id), deleted_at=rfc3339_now())
            self.store.delete("organization", org_id)
            return org

    # ----- users ------------------------------------------------------------------------------

    def users(self) -> list[Record]:
        return sorted(self.store.find("user", []), key=lambda user: user["email"])

    def user(self, user_id: str) -> Record:
        user = self.store.get("user", user_id)
        if user is None:
            raise DirectoryError(f"No user {user_id}")
        return user

    def save_user(self, user_id: str, email: str, given_name: str, family_name: str, memberships: dict) -> Record:
        """Create or replace a user; ``memberships`` maps organization id to role."""
        user = {
            "id": user_id,
            "email": email,
            "given_name": given_name,
            "family_name": family_name,
            "name": f"{given_name} {family_name}".strip(),
            "memberships": memberships,
            "create_time": rfc3339_now(),
        }
        return self.store.put("user", user)

    def memberships(self) -> list[tuple[Record, Record, str, str]]:
        """(user, organization, role, status) for every membership whose organization still exists."""
        orgs = {org["id"]: org for org in self.organizations()}
        return [
            (user, orgs[org_id], role, membership_status(user, org_id))
            for user in self.users()
            for org_id, role in user["memberships"].items()
            if org_id in orgs
        ]

    # ----- members and the seat cap (Scalekit counts ACTIVE and PENDING_INVITE against it) -------

    def set_max_allowed_users(self, org_id: str, limit: int) -> Record:
        with self.store.transaction():
            return self.store.put("organization", dict(self.organization(org_id), max_allowed_users=limit))

    def organization_users(self, org_id: str) -> list[Record]:
        """Users with a membership (any status) in the organization, oldest first."""
        users = [user for user in self.store.find("user", []) if org_id in user["memberships"]]
        return sorted(users, key=lambda user: (user.get("create_time") or "", user["id"]))

    def seats_taken(self, org_id: str) -> int:
        return sum(membership_status(user, org_id) in COUNTED for user in self.organization_users(org_id))

    def join(self, org_id: str, email: str, status: str, role: str = "member") -> Record:
        """Add (``ACTIVE``) or invite (``PENDING_INVITE``) ``email``, refused beyond the cap as Scalekit does."""
        with self.store.transaction():
            org = self.organization(org_id)
            user = next((user for user in self.users() if user["email"] == email), None)
            if user is not None and membership_status(user, org_id) in COUNTED:
                raise DirectoryError(f"{email} is already in {org['display_name']}")
            cap = org.get("max_allowed_users") or 0
            if cap and self.seats_taken(org_id) >= cap:
                raise DirectoryError(
                    f"{org['display_name']} has reached its limit of {cap} users (members and pending invites)"
                )
            if user is None:
                name = email.split("@")[0].capitalize()
                user = {
                    "id": scalekit_id("usr_"),
                    "email": email,
                    "given_name": name,
                    "family_name": "",
                    "name": name,
                    "memberships": {},
                    "create_time": rfc3339_now(),
                }
            user["memberships"][org_id] = role
            user.setdefault("membership_status", {})[org_id] = status
            return self.store.put("user", user)

    def set_membership_status(self, org_id: str, user_id: str, status: str | None) -> Record:
        """Change a membership's status (None removes the membership)."""
        with self.store.transaction():
            user = self.user(user_id)
            if org_id not in user["memberships"]:
                raise DirectoryError(f"{user['email']} is not in {org_id}")
            statuses = user.setdefault("membership_status", {})
            if status is None:
                del user["memberships"][org_id]
                statuses.pop(org_id, None)
            else:
                statuses[org_id] = status
            return self.store.put("user", user)

    # ----- sign-in grants ---------------------------------------------------------------------

    def issue_code(self, grant: Record) -> str:
        """Store a sign-in (user, organization, role, redirect_uri, scope, nonce) behind a one-time code."""
        code = secrets.token_urlsafe(32)
        self.store.put("code", {**grant, "id": code, "sid": scalekit_id("ses_"), "expires_at": time.time() + CODE_TTL})
        return code

    def redeem_code(self, code: str) -> Record | None:
        """The grant behind ``code``, once: the code is gone afterwards, used or expired."""
        with self.store.transaction():
            grant = self.store.get("code", code)
            if grant is not None:
                self.store.delete("code", code)
        return grant if grant and grant["expires_at"] > time.time() else None

    def issue_refresh_token(self, grant: Record) -> str:
        token = "rt_" + secrets.token_urlsafe(32)
        kept = {key: grant[key] for key in ("user_id", "organization_id", "role", "scope", "sid")}
        self.store.put("refresh_token", {**kept, "id": token})
        return token

    def rotate_refresh_token(self, token: str) -> tuple[Record, str] | None:
        """Spend a refresh token: its grant and its replacement, or None if unknown or already spent."""
        with self.store.transaction():
            grant = self.store.get("refresh_token", token)
            if grant is None:
                return None
            self.store.delete("refresh_token", token)
            return grant, self.issue_refresh_token(grant)

    def end_session(self, sid: str) -> None:
        """Sign-out: the session's refresh tokens stop working."""
        with self.store.transaction():
            for grant in self.store.find("refresh_token", [("sid", "is", sid)]):
                self.store.delete("refresh_token", grant["id"])
