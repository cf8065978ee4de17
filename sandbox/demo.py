"""Demo data for the sandbox: organizations and users in the fake Scalekit, announced to the app.

Fixed ids keep a second run idempotent: records are saved again, and every
organization's ``organization.created`` is sent again (the app ignores a
snapshot it already has, and adopts its Chargebee customer if the customer
exists), so a reset app database is provisioned again from the same sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox import organizations, runtime

ACME, GLOBEX = "org_70000000000000001", "org_70000000000000002"
DEMO_ORGANIZATIONS = {ACME: "Acme Corp", GLOBEX: "Globex"}


@dataclass(frozen=True)
class DemoUser:
    id: str
    email: str
    given_name: str
    family_name: str
    memberships: dict[str, str]


DEMO_USERS = (
    DemoUser("usr_70000000000000001", "ada@acme.test", "Ada", "Admin", {ACME: "admin"}),
    DemoUser("usr_70000000000000002", "max@acme.test", "Max", "Member", {ACME: "member"}),
    DemoUser("usr_70000000000000003", "gina@globex.test", "Gina", "Globex", {GLOBEX: "admin"}),
)


def seed() -> list[DemoUser]:
    """Save the demo organizations and users; queue organization.created for each organization."""
    directory = runtime.directory()
    for org_id, name in DEMO_ORGANIZATIONS.items():
        organization = directory.store.get("organization", org_id)
        if organization is None:
            organization = directory.create_organization(name, org_id=org_id)
        organizations.announce("organization.created", organization)
    for user in DEMO_USERS:
        directory.save_user(user.id, user.email, user.given_name, user.family_name, user.memberships)
    return list(DEMO_USERS)
