"""Past due: dues from the snapshot, the banner, grace-period gating, its signals, and Pay now and back."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from orgbilling import provisioning, signals
from orgbilling.models import Organization, Subscription
from sandbox import runtime
from tests.chargebee_payloads import pc2_subscription, post_event, vendor_event
from tests.invoice_payloads import invoice, invoice_event
from tests.sandbox_support import sandbox  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

MARCH_3 = 1_772_496_000  # 2026-03-03T00:00:00Z
PAYMENT_SIGNALS = ("payment_recovered", "grace_period_ended")


@pytest.fixture
def sent():
    """(signal name, subscription id) of every payment signal sent."""
    log = []
    for name in PAYMENT_SIGNALS:

        def receive(sender, organization, subscription, name=name, **kwargs):
            assert organization.pk == subscription.organization_id
            log.append((name, subscription.pk))

        getattr(signals, name).connect(receive, weak=False, dispatch_uid=f"test-{name}")
    yield log
    for name in PAYMENT_SIGNALS:
        getattr(signals, name).disconnect(dispatch_uid=f"test-{name}")


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    def run(payload: dict):
        with django_capture_on_commit_callbacks(execute=True):
            return post_event(client, payload)

    return run


@pytest.fixture
def acme() -> Organization:
    return Organization.objects.create(id="org_1", display_name="Acme Corp", chargebee_customer_id="cust_acme")


def due(version: int, count: int = 1, since: int | None = MARCH_3, total: int = 4500) -> dict:
    """A payment event: the invoice (due while ``count``) and the subscription with its dues."""
    subscription = pc2_subscription(
        "sub_cb_1", version=version, due_invoices_count=count, total_dues=total, due_since=since
    )
    status = "payment_due" if count else "paid"
    event_type = "payment_failed" if count else "payment_succeeded"
    return invoice_event(event_type, invoice(version=version, status=status, total=4500), subscription=subscription)


def test_the_vendor_payment_failed_event_sets_the_dues(post):
    event = vendor_event("payment_failed")
    Organization.objects.create(id="org_v", chargebee_customer_id=event["content"]["customer"]["id"])
    post(event)
    row = Subscription.objects.get()
    assert (row.due_invoices_count, row.total_dues, row.currency) == (1, 224, "USD")
    assert row.due_since == datetime.fromtimestamp(event["content"]["subscription"]["due_since"], UTC)


def test_banner_for_managers_with_pay_now_and_for_members_without(post, acme, scalekit):
    post(due(1))
    html = scalekit.sign_in(Client()).get("/billing").content.decode()
    assert "A payment of $45.00 failed on" in html and "3 March" in html
    assert "pay now to keep Acme Corp's subscription" in html and 'action="/billing/pay"' in html
    member = scalekit.sign_in(Client(), roles=["member"])
    html = member.get("/billing").content.decode()
    assert "A payment of $45.00 failed" in html and "Ask a billing manager to pay" in html
    assert 'action="/billing/pay"' not in html
    assert member.post("/billing/pay").status_code == 403


def test_gating_keeps_entitlements_through_the_grace_period_in_one_query(
    post, acme, settings, django_assert_num_queries
):
    now = int(timezone.now().timestamp())
    post(due(1, since=now - 6 * 86400))
    with django_assert_num_queries(1):
        assert acme.subscribed()
    settings.ORGBILLING_PAST_DUE_GRACE_DAYS = 5
    with django_assert_num_queries(1):
        assert not acme.subscribed()
    assert Subscription.objects.get().is_active is False
    post(due(2, count=0, total=0, since=None))
    assert acme.subscribed()


def test_signals_recovered_once_and_grace_ended_once_by_the_next_sync(
    post, acme, sent, settings, django_capture_on_commit_callbacks, fake_chargebee
):
    long_ago = int((timezone.now() - timedelta(days=8)).timestamp())
    post(due(1, since=long_ago))
    post(due(2, count=2, total=9000, since=long_ago))  # another retry: still due
    assert sent == []
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            call_command("orgbilling_sync", stdout=io.StringIO(), stderr=io.StringIO())
    row = Subscription.objects.get()
    assert sent == [("grace_period_ended", row.pk)]  # once, whatever the number of runs
    post(due(3, count=0, total=0, since=None))
    post(due(3, count=0, total=0, since=None))  # the same again
    assert sent == [("grace_period_ended", row.pk), ("payment_recovered", row.pk)]
    row.refresh_from_db()
    assert row.grace_period_ended_at is None  # the next dues get their own grace period


def test_a_dry_run_sends_nothing(post, acme, sent, django_capture_on_commit_callbacks, fake_chargebee):
    post(due(1, since=MARCH_3 - 30 * 86400))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("orgbilling_sync", "--dry-run", stdout=io.StringIO(), stderr=io.StringIO())
    assert sent == [] and Subscription.objects.get().grace_period_ended_at is None


# -- Pay now, Chargebee's page, and back ----------------------------------------------------------


def csrf(browser) -> dict:
    browser.get("/billing")
    return {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value}


def _page_id(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[1]


def test_pay_now_and_back_shows_the_result_at_once(scalekit, fake_chargebee, django_capture_on_commit_callbacks):
    provisioning.ensure_customer("org_1", "Acme Corp")
    fake_chargebee.create_subscription("org_1", "team-plan-USD-monthly", 3, id="sub_1")
    fake_chargebee.fail_next_charge()
    fake_chargebee.renew_now("sub_1")
    call_command("orgbilling_sync", "--chargebee", "--invoices", stdout=io.StringIO())  # the failed renewal
    browser = scalekit.sign_in(Client(enforce_csrf_checks=True))
    assert "failed on" in browser.get("/billing").content.decode()  # (the fixture's fake prices nothing)

    fake_chargebee.reset_calls()
    response = browser.post("/billing/pay", csrf(browser))
    assert response.status_code == 303 and "/collect_now/" in response["Location"]
    [call] = fake_chargebee.calls("POST", "/hosted_pages/collect_now")
    assert call.params["customer[id]"] == "org_1" and call.params["redirect_url"].endswith("/billing/pay/return")
    page_id = _page_id(response["Location"])

    fake_chargebee.collect_dues("org_1")  # what the customer did on Chargebee's page
    fake_chargebee.reset_calls()
    with django_capture_on_commit_callbacks(execute=True):
        returned = browser.get(f"/billing/pay/return?id={page_id}&state=succeeded")
    assert returned.status_code == 302 and returned["Location"] == "/billing"
    assert len(fake_chargebee.calls()) == 2  # subscriptions and invoices, listed once
    html = browser.get("/billing").content.decode()
    assert "payment is recorded" in html and "failed on" not in html


def test_only_the_first_return_from_a_recorded_page_calls_chargebee(scalekit, fake_chargebee):
    provisioning.ensure_customer("org_1", "Acme Corp")
    browser = scalekit.sign_in(Client())
    page_id = _page_id(browser.post("/billing/pay")["Location"])
    fake_chargebee.reset_calls()
    for query in ("", "?id=not-opened-here", f"?id={page_id}", f"?id={page_id}"):
        assert browser.get(f"/billing/pay/return{query}")["Location"] == "/billing"
    assert len(fake_chargebee.calls()) == 2  # the first return from the recorded page only
    provisioning.ensure_customer("org_2", "Other Corp")
    other = scalekit.sign_in(Client(), oid="org_2")
    fake_chargebee.reset_calls()
    assert other.get(f"/billing/pay/return?id={page_id}").status_code == 302 and fake_chargebee.calls() == []


def test_the_return_is_never_refused_nor_throttled(scalekit, fake_chargebee, settings):
    provisioning.ensure_customer("org_1", "Acme Corp")
    settings.ORGBILLING_THROTTLE_RATE = "1/day"  # a fixed window: no boundary within the test
    browser = scalekit.sign_in(Client())
    page_id = _page_id(browser.post("/billing/pay")["Location"])  # the day's one Chargebee-calling action
    assert browser.post("/billing/pay").status_code == 429
    fake_chargebee.reset_calls()
    back = browser.get(f"/billing/pay/return?id={page_id}")
    assert back.status_code == 302 and back["Location"] == "/billing" and len(fake_chargebee.calls()) == 2
    assert "payment is recorded" in browser.get("/billing").content.decode()


def test_chargebee_down_on_pay_now_is_a_message(scalekit, fake_chargebee):
    provisioning.ensure_customer("org_1", "Acme Corp")
    fake_chargebee.fail_next(3, status=503)
    response = scalekit.sign_in(Client()).post("/billing/pay")
    assert response.status_code == 502 and "Chargebee is having trouble" in response.content.decode()


def test_the_sandbox_collect_now_page_pays_and_returns(client, sandbox):  # noqa: F811
    fake = runtime.chargebee()
    fake.create_subscription("org_1", sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 1, id="sub_1")
    fake.fail_next_charge()
    fake.renew_now("sub_1")
    page = fake.open_collect_now("org_1", "http://testserver/sandbox/chargebee", "http://testserver/billing/pay/return")
    path = page["url"].removeprefix("http://testserver")
    assert "Pay your dues" in client.get(path).content.decode()
    assert client.post(path, {"card_number": "4000 0000 0000 0002"}).status_code == 400
    assert fake.get_subscription("sub_1")["due_invoices_count"] == 1

    paid = client.post(path, {"card_number": "4111 1111 1111 1111"})

    assert paid.status_code == 302 and paid["Location"].startswith("http://testserver/billing/pay/return?id=")
    assert fake.get_subscription("sub_1")["due_invoices_count"] == 0 and fake.due_invoices("org_1") == []
    assert client.get(path).status_code == 410
