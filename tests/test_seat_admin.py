"""Seats in the organizations admin: the column, the two filters, and the recount action (same permission and
confirmation as a resync, written to the audit trail), run over real HTTP against the fake Scalekit."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote

from orgbilling.models import AuditEvent, Organization, SeatLimitStatus
from sandbox import runtime
from tests.sandbox_support import served_app  # noqa: F401  (fixture)
from tests.test_admin import action_post, staff
from tests.test_seats import ORG, acme, cap  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/admin/orgbilling/organization/"


def listed(client, query: str) -> set[str]:
    html = client.get(f"{URL}?{query}").content.decode()
    return {org_id for org_id in (ORG, "org_full", "org_fine") if f"{quote(org_id)}/change/" in html}


def test_filters_for_full_organizations_and_unconfirmed_limits(client, acme):  # noqa: F811
    Organization.objects.filter(pk=ORG).update(seat_limit=3, seat_limit_status=SeatLimitStatus.REJECTED)
    Organization.objects.create(id="org_full", seat_limit=3, seats_used=2, seats_pending=1, seat_limit_status="pending")
    Organization.objects.create(
        id="org_fine", seat_limit=3, seats_used=2, seats_pending=0, seat_limit_status="confirmed"
    )
    client.force_login(staff())

    assert listed(client, "seats=full") == {"org_full"}
    assert listed(client, "seat_limit=unconfirmed") == {ORG, "org_full"}
    assert listed(client, "seat_limit=rejected") == {ORG}
    assert "3 / 3" in client.get(URL).content.decode()


def test_recount_asks_for_confirmation_then_counts_and_sends_again(client, acme):  # noqa: F811
    Organization.objects.filter(pk=ORG).update(seat_limit=4, seat_limit_status=SeatLimitStatus.REJECTED)
    client.force_login(staff("resync_organization"))
    page = action_post(client, URL, "recount_seats", [ORG], confirmed=False)
    assert page.status_code == 200 and b"Yes, I" in page.content and cap() is None

    action_post(client, URL, "recount_seats", [ORG], confirmed=True)

    organization = Organization.objects.get(pk=ORG)
    assert (organization.seats_used, organization.seat_limit_status, cap()) == (2, SeatLimitStatus.CONFIRMED, 4)
    event = AuditEvent.objects.get(action="recount_seats")
    assert (event.staff_user, event.organization_id, event.outcome) == ("support", ORG, "done")


def test_recount_needs_the_resync_permission(client, acme):  # noqa: F811
    client.force_login(staff("open_in_chargebee", "replay_webhookdelivery"))
    assert 'value="recount_seats"' not in client.get(URL).content.decode()
    action_post(client, URL, "recount_seats", [ORG], confirmed=True)
    assert Organization.objects.get(pk=ORG).seats_used is None and not runtime.scalekit_faults().calls
