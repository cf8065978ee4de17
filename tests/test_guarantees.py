"""Issue 9: nothing billed twice, and nobody who paid turned away (items 1-5, over real HTTP to the fake Chargebee).

Each test is named for its item. The concurrency halves of items 4 and 5
(parallel clicks on PostgreSQL, gunicorn with two workers) are in
``test_guarantees_concurrency.py``.
"""

from __future__ import annotations

import ast
import copy
import io
from pathlib import Path
from urllib.parse import unquote

import pytest
from django.core import checks
from django.core.management import call_command
from django.test import Client

import orgbilling
from orgbilling import checkout, provisioning
from orgbilling.models import CancelReason, Organization, Subscription, WebhookDelivery
from orgbilling.subscription_sync import cancel_local_subscriptions
from tests.billing_support import context_for, page_id
from tests.chargebee_payloads import post_event
from tests.conftest import sample

pytestmark = pytest.mark.django_db

ORG = "org_1"
REFUND = {"credit_option_for_current_term_charges": "full", "refundable_credits_handling": "schedule_refund"}


@pytest.fixture
def chargebee(fake_chargebee, django_capture_on_commit_callbacks):
    """The fake Chargebee with its webhooks collected; ``deliver()`` posts the new ones to the endpoint."""
    events: list[dict] = []
    fake_chargebee.on_event(events.append)
    client = Client()

    def deliver(event: dict | None = None) -> list:
        pending = [event] if event is not None else events[:]
        if event is None:
            events.clear()
        with django_capture_on_commit_callbacks(execute=True):
            return [post_event(client, item) for item in pending]

    fake_chargebee.deliver = deliver
    fake_chargebee.events = events
    return fake_chargebee


def paid_checkout(fake, organization_id: str = ORG) -> tuple[checkout.HostedRedirect, str]:
    """Open a checkout (as the organization's admin) and pay it at the fake; returns the page and its id."""
    hosted = checkout.start_checkout(context_for(organization_id), seats=2)
    fake.complete_hosted_page(page_id(hosted.url))
    return hosted, page_id(hosted.url)


def success_url(hosted: checkout.HostedRedirect) -> str:
    return f"/api/subscription/success?subscriptionId={hosted.subscription_id}&id={page_id(hosted.url)}"


def sync(*args: str) -> str:
    out = io.StringIO()
    call_command("orgbilling_sync", "--chargebee", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


# -- 1. a late customer_deleted ---------------------------------------------------------------


def test_item1_a_late_customer_deleted_leaves_the_new_subscription_active(chargebee, scalekit):
    provisioning.ensure_customer(ORG, "Acme Corp")
    hosted, _ = paid_checkout(chargebee)
    chargebee.deliver()
    first = Subscription.objects.get(pk=hosted.subscription_id)
    assert first.status == "in_trial"

    chargebee.delete_customer(ORG)  # in Chargebee: the customer and S1 go
    [deleted_event] = [event for event in chargebee.events if event["event_type"] == "customer_deleted"]
    chargebee.deliver()
    first.refresh_from_db()
    assert (first.status, first.deleted_at is not None) == ("cancelled", True)
    assert Organization.objects.get(pk=ORG).chargebee_customer_id is None

    again, again_page = paid_checkout(chargebee)  # same customer id, new subscription S2
    chargebee.deliver()
    Client().get(success_url(again))
    second = Subscription.objects.get(pk=again.subscription_id)
    assert second.status == "active"

    WebhookDelivery.objects.filter(event_id=deleted_event["id"]).delete()  # pruned
    renamed = {**copy.deepcopy(deleted_event), "id": "ev_same_deletion_other_id"}
    for late in chargebee.deliver(deleted_event) + chargebee.deliver(renamed):
        assert late.json()["status"] == "ignored"
    for delivery in WebhookDelivery.objects.filter(event_type="customer_deleted"):
        assert delivery.last_error.startswith("stale")

    second.refresh_from_db()
    organization = Organization.objects.get(pk=ORG)
    assert (second.status, organization.chargebee_customer_id) == ("active", ORG)
    page = scalekit.sign_in(Client()).get("/billing").content.decode()
    assert 'action="/billing/subscribe"' not in page
    assert last_line(sync()).startswith("chargebee: created 0, updated 0, repaired 0")


def test_item1_the_customer_version_comes_from_checkout_customer_events_and_sync(chargebee):
    provisioning.ensure_customer(ORG, "Acme Corp")
    checkout.start_checkout(context_for(), seats=2)

    def stored() -> tuple[int | None, int]:
        organization = Organization.objects.get(pk=ORG)
        return organization.chargebee_customer_version, chargebee.get_customer(ORG)["resource_version"]

    stored_version, current = stored()
    assert stored_version == current  # from the checkout's customer update
    chargebee.update_customer(ORG, {"company": "Acme Corp Ltd"})
    chargebee.deliver()  # customer_changed
    stored_version, current = stored()
    assert stored_version == current
    Organization.objects.filter(pk=ORG).update(chargebee_customer_version=None)
    chargebee.create_subscription(ORG, "team-plan-USD-monthly", 1)
    sync()
    stored_version, current = stored()
    assert stored_version == current


# -- 2. local-only changes repaired by Chargebee's copy of the same version ---------------------------


def test_item2_a_snapshot_of_the_same_version_repairs_a_local_change(chargebee, admin_client):
    provisioning.ensure_customer(ORG, "Acme Corp")
    hosted, _ = paid_checkout(chargebee)
    chargebee.deliver()
    row = Subscription.objects.get(pk=hosted.subscription_id)
    version = row.resource_version
    cancel_local_subscriptions(row.organization)  # local only: the version stays
    row.refresh_from_db()
    assert (row.status, row.resource_version) == ("cancelled", version)

    output = sync()
    assert f"repaired (Chargebee's copy replaced a local-only change): {row.pk}" in output
    assert f"repaired 1 ({row.pk})" in last_line(output)
    row.refresh_from_db()
    assert (row.status, row.cancelled_at, row.resource_version) == ("in_trial", None, version)

    cancel_local_subscriptions(row.organization)
    form = {"action": "resync_from_chargebee", "_selected_action": [ORG], "confirmed": "yes"}
    done = admin_client.post("/admin/orgbilling/organization/", form, follow=True)
    assert any(f"repaired 1 ({row.pk})" in str(message) for message in done.context["messages"])
    row.refresh_from_db()
    assert row.status == "in_trial"
    assert "repaired 0" in last_line(sync())  # identical now: nothing to repair


# -- 3. a checkout paid after its organization was deleted ------------------------------------------


@pytest.fixture
def paid_after_deletion(chargebee, post_scalekit):
    """Acme Corp opens checkout, is deleted in Scalekit (webhook processed), then the open page is paid."""
    provisioning.ensure_customer(ORG, "Acme Corp")
    hosted = checkout.start_checkout(context_for(), seats=2)
    chargebee.deliver()
    deleted = copy.deepcopy(sample("scalekit/webhooks/organization.deleted.json"))
    deleted["data"]["id"] = ORG
    assert post_scalekit(deleted).status_code == 200
    assert Organization.objects.get(pk=ORG).is_deleted
    chargebee.complete_hosted_page(page_id(hosted.url))
    chargebee.reset_calls()
    return hosted


def refund_cancels(fake) -> list:
    return [call for call in fake.calls("POST", "/subscriptions/*") if call.path.endswith("/cancel_for_items")]


def assert_cancelled_and_refunded(fake, hosted, admin_client) -> None:
    [cancel] = refund_cancels(fake)
    assert cancel.path == f"/subscriptions/{hosted.subscription_id}/cancel_for_items"
    assert {name: cancel.params.get(name) for name in REFUND} == REFUND and cancel.params["end_of_term"] == "false"
    assert fake.get_subscription(hosted.subscription_id)["status"] == "cancelled"
    row = Subscription.objects.get(pk=hosted.subscription_id)
    assert (row.status, row.cancel_reason, row.state()) == (
        "cancelled",
        CancelReason.ORGANIZATION_DELETED,
        "cancelled: organization deleted",
    )
    assert "cancelled: organization deleted" in admin_client.get("/admin/orgbilling/subscription/").content.decode()


def test_item3_the_webhook_of_a_subscription_for_a_deleted_organization_cancels_it_with_a_refund(
    chargebee, paid_after_deletion, admin_client
):
    chargebee.fail_next(3, path=f"/subscriptions/{paid_after_deletion.subscription_id}/cancel_for_items")
    created = [event for event in chargebee.events if event["event_type"] == "subscription_created"][-1]
    [failed] = chargebee.deliver(created)
    assert failed.status_code == 500  # the vendor retries it
    delivery = WebhookDelivery.objects.get(event_id=created["id"])
    assert delivery.status == "failed" and "Chargebee" in delivery.last_error
    row = Subscription.objects.get(pk=paid_after_deletion.subscription_id)
    assert row.state() == "cancelling: organization deleted"
    chargebee.reset_calls()

    [retried] = chargebee.deliver(created)  # Chargebee's retry: the same event, now a stale snapshot
    assert retried.json()["status"] == "processed"
    assert_cancelled_and_refunded(chargebee, paid_after_deletion, admin_client)


def test_item3_the_success_return_cancels_and_says_so_even_signed_out(chargebee, paid_after_deletion, admin_client):
    page = Client().get(success_url(paid_after_deletion))
    assert page.status_code == 200
    assert (
        "Acme Corp was deleted before your payment completed; the subscription was cancelled and your payment "
        "will be refunded" in page.content.decode()
    )
    assert_cancelled_and_refunded(chargebee, paid_after_deletion, admin_client)
    assert chargebee.calls("POST", f"/hosted_pages/{page_id(paid_after_deletion.url)}/acknowledge")


def test_item3_every_sync_retries_the_cancellation_until_chargebee_reports_it(
    chargebee, paid_after_deletion, admin_client
):
    chargebee.fail_next(3, path=f"/subscriptions/{paid_after_deletion.subscription_id}/cancel_for_items")
    page = Client().get(success_url(paid_after_deletion))
    assert "the subscription is being cancelled and your payment refunded" in page.content.decode()
    chargebee.reset_calls()

    dry = sync("--dry-run")
    assert f"would cancel with a full refund (organization deleted): {paid_after_deletion.subscription_id}" in dry
    assert refund_cancels(chargebee) == []
    assert Subscription.objects.get(pk=paid_after_deletion.subscription_id).status == "in_trial"

    chargebee.fail_next(3, path=f"/subscriptions/{paid_after_deletion.subscription_id}/cancel_for_items")
    with pytest.raises(Exception, match="still billed"):
        sync()
    chargebee.reset_calls()
    output = sync()
    assert f"cancelled with a full refund (organization deleted): {paid_after_deletion.subscription_id}" in output
    assert_cancelled_and_refunded(chargebee, paid_after_deletion, admin_client)
    chargebee.reset_calls()
    sync()
    assert refund_cancels(chargebee) == []  # done: the next run has nothing to cancel


# -- 4. every opened page recorded; a recorded page's return never refused -------------------------------


def test_item4_a_recorded_page_is_applied_even_when_the_session_cannot_be_verified(chargebee, scalekit):
    provisioning.ensure_customer(ORG, "Acme Corp")
    first = checkout.start_checkout(context_for(), seats=2)
    second = checkout.start_checkout(context_for(), seats=3)  # another tab: both pages stay recorded
    chargebee.complete_hosted_page(page_id(first.url))
    response = Client().get(success_url(first), HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 302
    assert unquote(response["Location"]) == "/auth/login?returnTo=/billing?success=1"  # applied, then sign in
    row = Subscription.objects.get(pk=first.subscription_id)
    assert row.status == "in_trial"
    assert chargebee.store.get("hosted_page", page_id(first.url))["state"] == "acknowledged"

    chargebee.reset_calls()
    refresh = scalekit.sign_in(Client()).get(success_url(first))  # a later return makes no call
    assert (refresh.status_code, refresh["Location"], chargebee.calls()) == (302, "/billing", [])
    unpaid = scalekit.sign_in(Client()).get(success_url(second))  # the other tab: Chargebee took only one
    assert unpaid["Location"] == "/billing?success=1"


def test_item4_an_unrecorded_page_is_refused_without_a_chargebee_call(chargebee, scalekit):
    provisioning.ensure_customer(ORG, "Acme Corp")
    hosted = checkout.start_checkout(context_for(), seats=2)
    chargebee.reset_calls()
    forged = f"/api/subscription/success?subscriptionId={hosted.subscription_id}&id=__test__someone_elses_page"
    response = scalekit.sign_in(Client()).get(forged)
    assert response.status_code == 404 and chargebee.calls() == []


# -- 5. throttle rules --------------------------------------------------------------------------------


def test_item5_members_never_spend_the_managers_budget(chargebee, scalekit, settings):
    settings.ORGBILLING_THROTTLE_RATE = "10/day"  # one window for the whole test
    provisioning.ensure_customer(ORG, "Acme Corp")
    chargebee.reset_calls()
    member = Client()
    for _ in range(20):
        response = member.get("/billing/portal/return", **scalekit.bearer(sub="usr_member", roles=["member"]))
        assert (response.status_code, response["Location"]) == (302, "/billing")
    assert chargebee.calls() == []  # no portal session this member opened: no call
    admin = Client()
    response = admin.post("/api/subscription/create", {"seats": 2}, "application/json", **scalekit.bearer())
    assert response.status_code == 200, response.content


def test_item5_the_payers_return_is_never_throttled(chargebee, scalekit, settings):
    settings.ORGBILLING_THROTTLE_RATE = "10/day"  # one window for the whole test
    provisioning.ensure_customer(ORG, "Acme Corp")
    admin = Client()
    created = admin.post("/api/subscription/create", {"seats": 2}, "application/json", **scalekit.bearer())
    hosted = created.json()
    for _ in range(9):
        assert admin.post("/billing/portal", **scalekit.bearer()).status_code == 303
    assert admin.post("/billing/portal", **scalekit.bearer()).status_code == 429  # the budget is spent
    chargebee.complete_hosted_page(page_id(hosted["url"]))
    back = admin.get(
        f"/api/subscription/success?subscriptionId={hosted['subscriptionId']}&id={page_id(hosted['url'])}",
        **scalekit.bearer(),
    )
    assert (back.status_code, back["Location"]) == (302, "/billing?success=1")
    assert chargebee.store.get("hosted_page", page_id(hosted["url"]))["state"] == "acknowledged"
    assert Subscription.objects.get(pk=hosted["subscriptionId"]).status == "in_trial"
    portal_back = admin.get("/billing/portal/return", **scalekit.bearer())
    assert (portal_back.status_code, portal_back["Location"]) == (302, "/billing")  # resynced, not refused


def test_item5_check_warns_when_the_counter_is_per_process(settings):
    settings.DEBUG = False
    settings.ORGBILLING_THROTTLE_CACHE = "default"  # the project's local-memory cache
    assert [m.id for m in checks.run_checks(tags=["orgbilling"]) if m.id == "orgbilling.W020"] == ["orgbilling.W020"]
    settings.ORGBILLING_THROTTLE_CACHE = ""  # the default: Redis or a database row, shared and atomic
    assert "orgbilling.W020" not in [m.id for m in checks.run_checks(tags=["orgbilling"])]
    settings.DEBUG, settings.ORGBILLING_THROTTLE_CACHE = True, "default"
    assert "orgbilling.W020" not in [m.id for m in checks.run_checks(tags=["orgbilling"])]


# Where Chargebee sends people back: never throttled (the opening action was counted), never refused.
RETURNS = {"complete_checkout", "return_from_portal", "payment_return", "payment_method_return"}


def _calls(function: ast.FunctionDef) -> set[str]:
    return {
        node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
    }


def test_item5_every_action_that_calls_chargebee_is_authorized_and_counted():
    """Any service taking the signed-in ``context`` that reaches the gateway, in any module added later too."""
    checked = set()
    for path in sorted(Path(orgbilling.__file__).parent.glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef) or "context" not in [a.arg for a in function.args.args]:
                continue
            calls = _calls(function)
            if "get_gateway" not in calls:
                continue
            checked.add(function.name)
            assert "authorize_reference" in calls or function.name in RETURNS, f"{path.name}:{function.name}"
            assert ("throttle" in calls) != (function.name in RETURNS), f"{path.name}:{function.name}"
    assert {"start_checkout", "change_subscription", "open_portal"} <= checked
