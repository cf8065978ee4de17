"""Seats on the billing page (from local tables only), the refusal of a decrease below the members, the check."""

from __future__ import annotations

import pytest
from django.test import Client

from orgbilling.checks import check_seats
from orgbilling.models import Organization
from tests.test_billing_pages import active_subscription, csrf

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(scalekit):
    subscription = active_subscription(seats=5)
    Organization.objects.filter(pk="org_1").update(
        display_name="Acme Corp", seat_limit=5, seats_used=4, seats_pending=1
    )
    return subscription


def page(scalekit, django_assert_max_num_queries, **claims) -> str:
    browser = scalekit.sign_in(Client(), **claims)
    browser.get("/billing")  # the organization memo and the session: the count below is the page's own
    with django_assert_max_num_queries(8):
        return browser.get("/billing").content.decode()


def test_the_page_shows_seats_used_against_the_limit_and_warns_when_full(acme, scalekit, django_assert_max_num_queries):
    html = page(scalekit, django_assert_max_num_queries)
    assert "5 of 5 seats used" in html and '<meter min="0" max="5" value="5"' in html
    assert "pending invites included: 1" in html
    assert "New members cannot join Acme Corp until you add seats." in html

    Organization.objects.filter(pk="org_1").update(seats_pending=0)
    html = page(scalekit, django_assert_max_num_queries)
    assert "4 of 5 seats used" in html and "cannot join" not in html


def test_members_see_it_read_only_and_no_cap_reads_seats_used(acme, scalekit, django_assert_max_num_queries):
    html = page(scalekit, django_assert_max_num_queries, roles=["member"])
    assert "5 of 5 seats used" in html and "New members cannot join Acme Corp" in html
    assert 'action="/billing/change/preview"' not in html
    Organization.objects.filter(pk="org_1").update(seat_limit=None)
    html = page(scalekit, django_assert_max_num_queries)
    assert "5 seats used" in html and "<meter" not in html and "cannot join" not in html


def test_a_decrease_below_members_is_refused_on_the_page_before_chargebee(acme, scalekit):
    browser = scalekit.sign_in(Client(enforce_csrf_checks=True))
    form = {**csrf(browser), "subscription": acme.pk, "plan": acme.plan_id}
    response = browser.post("/billing/change", {**form, "seats": "4"})
    assert response.status_code == 400
    assert "Acme Corp has 4 members and 1 pending invite; keep at least 5 seats or remove some." in (
        response.content.decode()
    )
    # An increase goes on to Chargebee (unreachable here: 502, not a seat refusal).
    assert browser.post("/billing/change", {**form, "seats": "8"}).status_code == 502


@pytest.mark.parametrize(("value", "ok"), [(None, True), (1, True), (10, True), (0, False), (-1, False), ("3", False)])
def test_seats_without_subscription_must_be_none_or_at_least_one(settings, value, ok):
    settings.ORGBILLING_SEATS_WITHOUT_SUBSCRIPTION = value
    problems = check_seats()
    assert (problems == []) is ok
    assert all(problem.id == "orgbilling.E020" for problem in problems)
