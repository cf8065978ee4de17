"""Every surface that reads a subscription's status agrees with the README's table of statuses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from orgbilling import checkout, provisioning, statuses
from orgbilling.decorators import subscription_required
from orgbilling.errors import BillingProblem
from orgbilling.models import Organization, Subscription
from orgbilling.seat_limits import wanted_limit
from orgbilling.templatetags.orgbilling_tags import subscribed
from tests.billing_support import context_for
from tests.chargebee_payloads import SignalLog, pc2_subscription

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[1] / "README.md"
PAST_DUE = "past due"


def readme_table() -> dict[str, statuses.Meaning]:
    section = README.read_text().split("### Subscription statuses", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1] in ("yes", "no"):
            name = re.match(r"`(\w+)`|(past due)", cells[0])
            rows[name[1] or name[2]] = statuses.Meaning(*(cell == "yes" for cell in cells[1:]))
    return rows


TABLE = readme_table()


def test_the_readme_table_is_the_code_s_table():
    assert {status: TABLE[status] for status in statuses.MEANINGS} == statuses.MEANINGS
    assert set(TABLE) == {*statuses.MEANINGS, PAST_DUE}
    assert TABLE[PAST_DUE] == statuses.MEANINGS["active"]  # Chargebee keeps the status during dunning


def stored_status(row: str) -> str:
    return "active" if row == PAST_DUE else row


@pytest.fixture
def organization():
    return Organization.objects.create(id="org_1", chargebee_customer_id="org_1")


def subscription_in(organization: Organization, row: str) -> Subscription:
    # A Chargebee id: the row is Chargebee's subscription, not a checkout waiting for confirmation.
    return Subscription.objects.create(
        organization=organization, status=stored_status(row), seats=4, chargebee_subscription_id="cb_1"
    )


@pytest.mark.parametrize("row", sorted(TABLE))
def test_every_entitlement_surface_follows_the_table(organization, row, client, scalekit):
    subscription_in(organization, row)
    entitles = TABLE[row].entitles
    context = context_for("org_1")

    assert organization.subscribed() is entitles
    assert wanted_limit(organization) == (4 if entitles else None)  # None: no cap without a subscription
    request = RequestFactory().get("/reports")
    request.billing = context
    assert subscribed(request) is entitles

    def view(request):
        return HttpResponse("the report")

    page = subscription_required(view)(request)
    api = subscription_required(api=True)(view)(request)
    assert (page.status_code, api.status_code) == ((200, 200) if entitles else (302, 402))
    [listed] = client.get("/api/subscription", **scalekit.bearer(oid="org_1")).json()["subscriptions"]
    assert listed["entitled"] is entitles


@pytest.fixture
def customer(fake_chargebee):
    """org_1 with its Chargebee customer, so a checkout that is not blocked can go through."""
    organization = provisioning.ensure_customer("org_1", "Acme")
    fake_chargebee.reset_calls()
    return organization


@pytest.mark.parametrize("row", sorted(TABLE))
def test_a_new_checkout_is_blocked_as_the_table_says(customer, row, fake_chargebee):
    subscription_in(customer, row)
    if TABLE[row].blocks_checkout:
        with pytest.raises(BillingProblem) as refused:
            checkout.start_checkout(context_for("org_1"))
        assert refused.value.status == 409
        assert fake_chargebee.calls() == []
    else:
        assert checkout.start_checkout(context_for("org_1")).url


def test_a_waiting_checkout_row_blocks_nothing(customer):
    Subscription.objects.create(organization=customer, status="future")  # no Chargebee id yet
    assert checkout.start_checkout(context_for("org_1")).url


@pytest.mark.parametrize("row", sorted(TABLE))
def test_cancelled_is_what_the_table_says(organization, row, django_capture_on_commit_callbacks):
    from orgbilling.subscription_sync import apply_subscription

    with django_capture_on_commit_callbacks(execute=True):
        apply_subscription(pc2_subscription("cb_1", customer_id="org_1", version=1), None)
    with SignalLog() as sent, django_capture_on_commit_callbacks(execute=True):
        apply_subscription(pc2_subscription("cb_1", customer_id="org_1", status=stored_status(row), version=2), None)
    assert ("subscription_cancelled" in sent.names()) is TABLE[row].cancelled
    assert not Organization.objects.get(pk="org_1").subscribed() if TABLE[row].cancelled else True


@pytest.mark.parametrize("headers", [{}, {"HTTP_AUTHORIZATION": "Bearer not-a-token"}], ids=["no-token", "bad-token"])
def test_signed_out_request_billing_is_falsy(scalekit, headers):
    from orgbilling.middleware import BillingContextMiddleware

    request = RequestFactory().get("/reports", **headers)
    BillingContextMiddleware(lambda request: HttpResponse())(request)
    assert not request.billing
