"""The invoice mirror: webhooks, the sync pass, the billing page list, PDF downloads and the JSON API."""

from __future__ import annotations

import io
import logging
import math
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from orgbilling import provisioning, signals
from orgbilling.invoices import apply_invoice
from orgbilling.models import Invoice, Organization, Subscription, WebhookDelivery
from tests.chargebee_payloads import (
    CUSTOMER_ID,
    ORG_ID,
    START,
    pc2_event,
    pc2_subscription,
    post_event,
    vendor_event,
)
from tests.invoice_payloads import invoice, invoice_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    def run(payload: dict):
        with django_capture_on_commit_callbacks(execute=True):
            return post_event(client, payload)

    return run


@pytest.fixture
def acme() -> Organization:
    return Organization.objects.create(id=ORG_ID, display_name="Acme Corp", chargebee_customer_id=CUSTOMER_ID)


@pytest.fixture
def failed_payments():
    received = []

    def receive(sender, organization, invoice, **kwargs):
        received.append((organization.pk, invoice.pk, invoice.status))

    signals.payment_failed.connect(receive, dispatch_uid="test-payment-failed")
    yield received
    signals.payment_failed.disconnect(dispatch_uid="test-payment-failed")


def outcome() -> tuple[str, str]:
    delivery = WebhookDelivery.objects.order_by("-pk").first()
    return delivery.status, delivery.last_error


# -- webhooks ----------------------------------------------------------------------------


def test_an_invoice_of_an_unknown_subscription_is_kept_and_linked_when_it_arrives(post, acme):
    assert post(invoice_event("invoice_generated", invoice(version=1))).status_code == 200
    row = Invoice.objects.get()
    assert (row.organization_id, row.subscription, row.chargebee_subscription_id) == (ORG_ID, None, "sub_cb_1")
    assert (row.status, row.total, row.amount_paid, row.currency) == ("paid", 4500, 4500, "USD")

    post(pc2_event("subscription_created", pc2_subscription("sub_cb_1")))

    row.refresh_from_db()
    assert row.subscription == Subscription.objects.get(chargebee_subscription_id="sub_cb_1")


def test_ordering_guard_older_ignored_equal_and_different_applied(post, acme):
    post(invoice_event("invoice_updated", invoice(version=5, status="posted")))
    post(invoice_event("invoice_updated", invoice(version=4, status="paid")))
    assert outcome()[0] == "ignored" and Invoice.objects.get().status == "posted"
    post(invoice_event("invoice_updated", invoice(version=5, status="paid")))  # Chargebee's differing copy
    assert outcome()[0] == "processed" and Invoice.objects.get().status == "paid"
    post(invoice_event("invoice_updated", invoice(version=5, status="paid")))  # the same again: nothing to do
    assert outcome()[0] == "ignored"


def test_a_deleted_invoice_disappears_for_good_and_a_voided_one_stays_void(post, acme, scalekit):
    post(invoice_event("invoice_generated", invoice("inv_gone", version=1)))
    post(invoice_event("invoice_generated", invoice("inv_void", version=1)))
    post(invoice_event("invoice_deleted", invoice("inv_gone", version=2)))
    post(invoice_event("invoice_updated", invoice("inv_gone", version=1)))  # late and older: stays deleted
    post(invoice_event("invoice_updated", invoice("inv_void", version=2, status="voided")))

    assert Invoice.objects.get(pk="inv_gone").deleted_at is not None
    html = scalekit.sign_in(Client(), oid=ORG_ID).get("/billing").content.decode()
    assert "inv_void" in html and "Void" in html and "inv_gone" not in html


def test_an_invoice_of_an_unknown_customer_is_ignored(post):
    post(invoice_event("invoice_generated", invoice(customer_id="cust_nobody")))
    assert outcome() == ("ignored", "unknown customer: no organization uses Chargebee customer cust_nobody")
    assert not Invoice.objects.exists()


def test_an_unreadable_invoice_is_refused_before_anything_is_written(post, acme):
    response = post(invoice_event("invoice_generated", invoice(total=-5)))
    assert response.status_code == 400 and not WebhookDelivery.objects.exists()
    body = invoice_event("payment_succeeded", invoice())
    del body["content"]["invoice"]
    assert post(body).status_code == 400


def test_vendor_payment_events_update_the_invoice_and_signal_once_per_invoice_that_becomes_due(post, failed_payments):
    failed = vendor_event("payment_failed")
    Organization.objects.create(id="org_v", chargebee_customer_id=failed["content"]["customer"]["id"])
    post(failed)
    row = Invoice.objects.get()
    assert (row.status, row.amount_due, row.dunning_status) == ("payment_due", 224, "in_progress")
    retry = invoice_event(
        "payment_failed", dict(failed["content"]["invoice"], resource_version=row.resource_version + 1)
    )
    retry["content"]["customer"] = failed["content"]["customer"]
    post(retry)
    assert failed_payments == [("org_v", row.pk, "payment_due")]  # once, not per retry


# -- sync pass ----------------------------------------------------------------------------


def test_sync_pass_lists_100_a_page_and_applies_each_once(fake_chargebee, acme):
    for number in range(250):
        fake_chargebee.store.put("invoice", fake_chargebee.store.touch(invoice(f"inv_{number}")))
    fake_chargebee.store.put("invoice", fake_chargebee.store.touch(invoice("inv_deleted", deleted=True)))
    Invoice.objects.create(id="inv_deleted", organization=acme, chargebee_customer_id=CUSTOMER_ID, status="paid")
    fake_chargebee.reset_calls()
    out = io.StringIO()
    call_command("orgbilling_sync", "--invoices", stdout=out, stderr=io.StringIO())
    calls = fake_chargebee.calls()
    assert len(calls) == math.ceil(251 / 100) and {call.path for call in calls} == {"/invoices"}
    assert calls[0].params["limit"] == "100" and calls[0].params["include_deleted"] in ("true", "True")
    assert "invoices: created 250, updated 1, unchanged 0" in out.getvalue()
    assert Invoice.objects.filter(deleted_at__isnull=True).count() == 250

    call_command("orgbilling_sync", "--invoices", "--since", "1d", stdout=out, stderr=io.StringIO())
    since = datetime.now(UTC).timestamp() - 86400
    assert abs(int(fake_chargebee.calls()[-1].params["updated_at[after]"]) - since) < 60


def test_sync_pass_dry_run_writes_nothing(fake_chargebee, acme):
    fake_chargebee.store.put("invoice", fake_chargebee.store.touch(invoice()))
    out = io.StringIO()
    call_command("orgbilling_sync", "--invoices", "--dry-run", stdout=out, stderr=io.StringIO())
    assert "created 1" in out.getvalue() and "dry run" in out.getvalue() and not Invoice.objects.exists()


# -- the billing page and downloads ----------------------------------------------------------------


def stored(organization: Organization, count: int) -> list[Invoice]:
    return [
        apply_invoice(
            invoice(f"inv_{n:02}", customer_id=organization.chargebee_customer_id, date=START + n * 86400)
        ).invoice
        for n in range(count)
    ]


@pytest.fixture
def manager(scalekit):
    return scalekit.sign_in(Client(enforce_csrf_checks=True), oid=ORG_ID)


def csrf(browser) -> dict:
    browser.get("/billing")
    return {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value}


def test_managers_see_invoices_newest_first_and_paginated_also_after_cancellation(manager, acme):
    Subscription.objects.create(organization=acme, status="cancelled", chargebee_subscription_id="sub_cb_1")
    stored(acme, 12)
    html = manager.get("/billing").content.decode()
    assert html.index("inv_11") < html.index("inv_10") and "inv_01" not in html
    assert "Page 1 of 2" in html and "$45.00" in html and "Download PDF" in html
    older = manager.get("/billing?invoices=2").content.decode()
    assert "inv_01" in older and "inv_11" not in older


def test_each_row_says_its_date_amounts_status_and_which_invoice_its_button_downloads(manager, acme):
    apply_invoice(invoice("INV-7", status="payment_due", total=1250, currency_code="EUR", date=START))
    apply_invoice(invoice("inv_void", status="voided"))
    html = manager.get("/billing").content.decode()
    row = html[html.rindex("<tr>", 0, html.index("<td>INV-7</td>")) :]
    row = row[: row.index("</tr>")]
    day = datetime.fromtimestamp(START, tz=UTC)
    assert f'<time datetime="{day.isoformat()}">Jan. 1, 2026</time>' in row
    assert "€12.50 (€12.50 due)" in row and "<td>Payment Due</td>" in row
    assert 'action="/billing/invoices/INV-7/pdf"' in row and 'aria-label="Download PDF of invoice INV-7"' in row
    void = html[html.index("<td>inv_void</td>") :]
    assert "<td>Void</td>" in void[: void.index("</tr>")] and "due)" not in void[: void.index("</tr>")]


def test_members_are_told_to_ask_a_billing_manager(scalekit, acme):
    stored(acme, 1)
    member = scalekit.sign_in(Client(), oid=ORG_ID, roles=["member"])
    html = member.get("/billing").content.decode()
    assert "Ask a billing manager for invoices" in html and "inv_00" not in html
    assert member.post("/billing/invoices/inv_00/pdf").status_code == 403
    assert member.get("/api/invoices", **scalekit.bearer(oid=ORG_ID, roles=["member"])).status_code == 403


def test_the_page_with_24_invoices_makes_no_chargebee_call_and_a_fixed_number_of_queries(
    manager, acme, fake_chargebee, django_assert_num_queries
):
    stored(acme, 1)
    manager.get("/billing")  # warm the key cache and the organization memo
    connection.queries_log.clear()  # a log filled by earlier tests (it keeps 9,000) would capture nothing
    with CaptureQueriesContext(connection) as few:
        manager.get("/billing")
    assert few.captured_queries, "the page reads its data from local tables"
    stored(acme, 24)
    with django_assert_num_queries(len(few.captured_queries)):
        manager.get("/billing")
    assert fake_chargebee.calls() == []


def test_download_redirects_to_a_fresh_link_never_stored_or_logged(manager, acme, fake_chargebee, caplog):
    provisioning.ensure_customer(ORG_ID)
    [mine] = stored(acme, 1)
    fake_chargebee.store.put("invoice", fake_chargebee.store.touch(invoice(mine.pk)))
    with caplog.at_level(logging.DEBUG):
        response = manager.post(f"/billing/invoices/{mine.pk}/pdf", csrf(manager))
    assert response.status_code == 303 and "/invoices/" in response["Location"]
    assert response["Location"].endswith(".pdf")
    [call] = fake_chargebee.calls("POST", f"/invoices/{mine.pk}/pdf")
    token = response["Location"].rsplit("/", 1)[-1]
    # What the project logs (orgbilling's loggers and Django's); the SDK's own DEBUG lines go nowhere by default.
    ours = [record.getMessage() for record in caplog.records if record.name.startswith(("orgbilling", "django"))]
    assert ours and not any(token in line for line in ours)
    assert not any(token in str(value) for value in Invoice.objects.values_list())


def test_download_refusals(manager, acme, fake_chargebee, settings):
    settings.ORGBILLING_THROTTLE_RATE = "2/day"  # a fixed window: no boundary within the test
    other = Organization.objects.create(id="org_other", chargebee_customer_id="cust_other")
    [theirs] = stored(other, 1)
    assert manager.post(f"/billing/invoices/{theirs.pk}/pdf", csrf(manager)).status_code == 404
    [mine] = stored(acme, 1)  # unknown to this fake Chargebee: gone
    gone = manager.post(f"/billing/invoices/{mine.pk}/pdf", csrf(manager))
    assert gone.status_code == 404 and "no longer available" in gone.content.decode()
    fake_chargebee.fail_next(3, status=503, path=f"/invoices/{mine.pk}/pdf")
    down = manager.post(f"/billing/invoices/{mine.pk}/pdf", csrf(manager))
    assert down.status_code == 502 and "Chargebee is having trouble" in down.content.decode()
    assert manager.post(f"/billing/invoices/{mine.pk}/pdf", csrf(manager)).status_code == 429  # the third call


# -- JSON API -------------------------------------------------------------------------------


def test_api_lists_invoices_paginated_and_hands_out_a_download_link(client, scalekit, acme, fake_chargebee):
    invoices = stored(acme, 11)
    headers = scalekit.bearer(oid=ORG_ID)
    first = client.get("/api/invoices", **headers).json()
    assert (first["page"], first["pages"], first["count"]) == (1, 2, 11)
    assert first["invoices"][0]["id"] == "inv_10" and first["invoices"][0]["total"] == 4500
    assert client.get("/api/invoices?page=2", **headers).json()["invoices"][0]["id"] == "inv_00"

    latest = invoices[-1]
    fake_chargebee.store.put("invoice", fake_chargebee.store.touch(invoice(latest.pk)))
    answer = client.post(f"/api/invoices/{latest.pk}/pdf", **headers)
    assert answer.status_code == 200 and answer.json()["url"].endswith(".pdf") and answer.json()["validTill"]
    assert client.post(f"/api/invoices/{invoices[0].pk}/pdf", **headers).status_code == 404  # gone in Chargebee
    fake_chargebee.fail_next(3, status=503)
    assert client.post(f"/api/invoices/{latest.pk}/pdf", **headers).status_code == 502
    assert client.post("/api/invoices/inv_nope/pdf", **headers).status_code == 404


@pytest.mark.parametrize(
    ("number", "shown", "reads"),
    [
        ("", 1, 1),
        ("2", 2, 1),
        ("9", 2, 3),  # past the last page: the last page, as Django's paginator answers
        ("0", 2, 2),  # not a page number: the paginator alone
        ("99999999999999999999999", 2, 2),
        ("x", 1, 2),  # not a number: the first page
        ("²", 1, 2),
    ],
)
def test_an_invoice_page_and_its_count_come_in_one_query(manager, acme, number, shown, reads):
    """The billing page's invoices: the rows and their count in one statement; odd numbers as the paginator."""
    stored(acme, 12)
    manager.get("/billing")  # warm the key cache and the organization memo
    with CaptureQueriesContext(connection) as queries:
        html = manager.get(f"/billing?invoices={number}").content.decode()
    assert f"Page {shown} of 2" in html
    assert ("inv_11" in html, "inv_01" in html) == ((True, False) if shown == 1 else (False, True))
    assert sum('FROM "orgbilling_invoice"' in query["sql"] for query in queries.captured_queries) == reads
