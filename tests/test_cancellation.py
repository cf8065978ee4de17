"""Cancel at the end of the term and keep the subscription: billing managers only, throttled, shown at once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from orgbilling import cancellation, provisioning
from orgbilling.audit import AuditEvent
from orgbilling.models import Organization, Subscription
from orgbilling.subscription_sync import apply_subscription

pytestmark = pytest.mark.django_db

PLAN = "team-plan-USD-monthly"
CANCEL = "/subscriptions/sub_1/cancel_for_items"
KEEP = "/subscriptions/sub_1/remove_scheduled_cancellation"


@pytest.fixture
def subscribed(fake_chargebee):
    """org_1's 3-seat subscription, in Chargebee and applied here; the call log starts empty."""
    provisioning.ensure_customer("org_1", "Acme")
    sub = fake_chargebee.create_subscription("org_1", PLAN, 3, id="sub_1")
    apply_subscription(**fake_chargebee.with_customer(sub))
    fake_chargebee.reset_calls()
    return Subscription.objects.get(pk="sub_1")


@pytest.fixture
def manager(scalekit):
    return scalekit.sign_in(Client(enforce_csrf_checks=True))


@pytest.fixture
def member(scalekit):
    return scalekit.sign_in(Client(enforce_csrf_checks=True), roles=["member"])


def token(browser) -> dict:
    browser.get("/billing")
    return {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value}


def paths(fake) -> list[tuple[str, str]]:
    return [(call.method, call.path) for call in fake.calls()]


def test_cancel_after_confirming_the_date_then_keep(manager, subscribed, fake_chargebee):
    page = manager.get("/billing").content.decode()
    assert 'href="/billing/cancel?subscription=sub_1"' in page and "Keep my subscription" not in page

    confirm = manager.get("/billing/cancel?subscription=sub_1")
    html = confirm.content.decode()
    ends = subscribed.current_period_end
    assert confirm.status_code == 200 and f'datetime="{ends.isoformat()}"' in html
    assert 'action="/billing/cancel"' in html and 'name="csrfmiddlewaretoken"' in html
    assert fake_chargebee.calls() == []  # the confirmation page reads local rows only

    response = manager.post("/billing/cancel", {"subscription": "sub_1", **token(manager)})
    assert response.status_code == 302 and response["Location"] == "/billing#ob-current"
    [call] = fake_chargebee.calls()
    assert (call.path, call.params["end_of_term"]) == (CANCEL, "true")
    row = Subscription.objects.get(pk="sub_1")
    assert (row.status, row.cancel_at_period_end, row.cancelled_at) == ("non_renewing", True, ends)
    page = manager.get("/billing").content.decode()
    assert "it ends on" in page and "This subscription cancels on" in page
    assert 'action="/billing/keep"' in page and "Next charge" not in page

    fake_chargebee.reset_calls()
    response = manager.post("/billing/keep", {"subscription": "sub_1", **token(manager)})
    assert response.status_code == 302
    assert paths(fake_chargebee) == [("POST", KEEP), ("GET", "/subscriptions/sub_1/renewal_estimate")]
    row = Subscription.objects.get(pk="sub_1")
    assert (row.status, row.cancel_at_period_end, row.cancelled_at) == ("active", False, None)
    assert row.renewal_estimate_version == row.resource_version  # its next charge, fetched after the commit
    page = manager.get("/billing").content.decode()
    assert "renews as before" in page and "Next charge" in page and "cancels on" not in page
    assert list(AuditEvent.objects.order_by("at").values_list("action", "outcome")) == [
        ("cancel", "done"),
        ("keep", "done"),
    ]


def test_members_are_refused_and_never_spend_the_managers_budget(manager, member, subscribed, fake_chargebee, settings):
    settings.ORGBILLING_THROTTLE_RATE = "1/day"
    assert "/billing/cancel" not in member.get("/billing").content.decode()
    assert member.get("/billing/cancel?subscription=sub_1").status_code == 403
    for path in ("/billing/cancel", "/billing/keep", "/billing/cancel", "/billing/keep"):
        assert member.post(path, {"subscription": "sub_1", **token(member)}).status_code == 403
    assert fake_chargebee.calls() == []
    assert manager.post("/billing/cancel", {"subscription": "sub_1", **token(manager)}).status_code == 302


def test_throttled_refused_twice_csrf_and_another_organizations_subscription(
    manager, subscribed, fake_chargebee, settings
):
    assert manager.post("/billing/cancel", {"subscription": "sub_1"}).status_code == 403  # no CSRF token
    other = Organization.objects.create(id="org_2", chargebee_customer_id="org_2")
    Subscription.objects.create(id="sub_other", organization=other, status="active", chargebee_subscription_id="x")
    assert manager.post("/billing/cancel", {"subscription": "sub_other", **token(manager)}).status_code == 404
    assert (
        manager.post("/billing/keep", {"subscription": "sub_1", **token(manager)}).status_code == 409
    )  # nothing to keep
    settings.ORGBILLING_THROTTLE_RATE = "1/day"
    assert manager.post("/billing/cancel", {"subscription": "sub_1", **token(manager)}).status_code == 302
    again = manager.post("/billing/cancel", {"subscription": "sub_1", **token(manager)})
    assert again.status_code == 409 and "already cancels on" in again.content.decode()  # refused before the budget
    assert manager.get("/billing/cancel?subscription=sub_1").status_code == 409
    assert manager.post("/billing/keep", {"subscription": "sub_1", **token(manager)}).status_code == 429
    assert paths(fake_chargebee) == [("POST", CANCEL)]


def test_chargebee_failing_or_refusing_changes_nothing(manager, subscribed, fake_chargebee):
    fake_chargebee.fail_next(5, 503, path=CANCEL)
    response = manager.post("/billing/cancel", {"subscription": "sub_1", **token(manager)})
    assert response.status_code == 502 and Subscription.objects.get(pk="sub_1").status == "active"
    fake_chargebee.clear_faults()
    fake_chargebee.cancel_subscription("sub_1", end_of_term=True)  # in Chargebee's portal; its webhook not here yet
    response = manager.post("/billing/cancel", {"subscription": "sub_1", **token(manager)})
    assert response.status_code == 409 and "reload the page" in response.content.decode()
    assert Subscription.objects.get(pk="sub_1").status == "active"
    assert list(AuditEvent.objects.values_list("action", "outcome")) == [("cancel", "failed")]


@pytest.mark.django_db(transaction=True)
def test_chargebee_is_called_outside_any_transaction(subscribed, monkeypatch):
    from orgbilling import chargebee_gateway
    from tests.billing_support import context_for

    seen = []
    for name in ("cancel_at_term_end", "remove_scheduled_cancellation", "renewal_estimate"):
        real = getattr(chargebee_gateway.ChargebeeGateway, name)

        def spy(self, subscription_id, _real=real, _name=name):
            seen.append((_name, connection.in_atomic_block))
            return _real(self, subscription_id)

        monkeypatch.setattr(chargebee_gateway.ChargebeeGateway, name, spy)
    context = context_for("org_1")
    cancellation.schedule_cancellation(context, subscription_id="sub_1")
    cancellation.keep_subscription(context, subscription_id="sub_1")
    assert seen == [
        ("cancel_at_term_end", False),
        ("remove_scheduled_cancellation", False),
        ("renewal_estimate", False),
    ]


def test_keeping_while_the_estimate_fails_still_keeps_and_marks_the_figure_stale(manager, subscribed, fake_chargebee):
    fake_chargebee.cancel_subscription("sub_1", end_of_term=True)
    apply_subscription(**fake_chargebee.with_customer(fake_chargebee.get_subscription("sub_1")))
    fake_chargebee.fail_next(10, 503, path="/subscriptions/sub_1/renewal_estimate")
    response = manager.post("/billing/keep", {"subscription": "sub_1", **token(manager)})
    assert response.status_code == 302  # never a 500: the change is made, only its figure waits
    row = Subscription.objects.get(pk="sub_1")
    assert row.status == "active" and row.renewal_estimate_version is None
    assert "the amount is being worked out" in manager.get("/billing").content.decode()
