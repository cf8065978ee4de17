"""The fake Chargebee's invoices through the real SDK: made at checkout, change and renewal; listed; PDFs."""

from __future__ import annotations

import pytest
from chargebee import InvalidRequestError

from sandbox import runtime
from sandbox.fake_chargebee import FakeChargebee
from sandbox.fake_chargebee_invoices import invoice_pdf_bytes
from tests.sandbox_support import sandbox  # noqa: F401  (fixture)
from tests.test_fake_chargebee import PRICES, cb, open_checkout, server, vendor_settings  # noqa: F401  (fixtures)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock):
    return FakeChargebee(item_prices=PRICES, clock=clock)


def listed(cb, **params) -> list:  # noqa: F811
    return [entry.invoice for entry in cb.Invoice.list({"limit": 100, **params}).list]


def test_checkout_change_and_renewal_each_make_a_paid_invoice(cb, fake):  # noqa: F811
    cb.Customer.create({"id": "org_1"})
    fake.complete_hosted_page(open_checkout(cb, sub_id="sub_1", quantity=3).id)
    change = cb.HostedPage.checkout_existing_for_items(
        {"subscription": {"id": "sub_1"}, "subscription_items": [{"item_price_id": "team-monthly", "quantity": 5}]}
    ).hosted_page
    fake.complete_hosted_page(change.id)
    fake.renew_now("sub_1")

    invoices = listed(cb, **{"subscription_id[is]": "sub_1"})
    assert [(inv.status, inv.total, inv.amount_due) for inv in invoices] == [
        ("paid", 6000, 0),
        ("paid", 6000, 0),
        ("paid", 3600, 0),
    ]
    types = [entry.event.event_type for entry in cb.Event.list({"limit": 3}).list]
    assert types == ["subscription_renewed", "payment_succeeded", "invoice_generated"]


def test_a_failed_renewal_leaves_a_due_invoice_and_dunning_fields(cb, fake):  # noqa: F811
    fake.create_subscription("org_1", "team-monthly", 2, id="sub_1")
    fake.fail_next_charge()
    due = fake.renew_now("sub_1")
    fake.renew_now("sub_1")  # the knob fails one charge only

    subscription = cb.Subscription.retrieve("sub_1").subscription
    assert (subscription.due_invoices_count, subscription.total_dues) == (1, 2400)
    assert subscription.due_since == due["date"]
    invoice = cb.Invoice.retrieve(due["id"]).invoice
    assert (invoice.status, invoice.amount_due, invoice.dunning_status) == ("payment_due", 2400, "in_progress")
    failed = [e.event for e in cb.Event.list({"limit": 100}).list if e.event.event_type == "payment_failed"]
    assert [event.content["subscription"]["due_invoices_count"] for event in failed] == [1]


def test_list_filters_by_update_time_and_hides_deleted_unless_asked(cb, fake, clock):  # noqa: F811
    fake.create_subscription("org_1", "team-monthly", 1, id="sub_1")
    first = fake.renew_now("sub_1")
    second = fake.renew_now("sub_1")
    clock.now += 60
    fake.delete_invoice(first["id"])
    assert [inv.id for inv in listed(cb)] == [second["id"]]
    assert {inv.id for inv in listed(cb, include_deleted=True)} == {first["id"], second["id"]}
    later = fake.get_invoice(first["id"])["updated_at"] - 1
    assert [inv.id for inv in listed(cb, include_deleted=True, **{"updated_at[after]": later})] == [first["id"]]


def test_pdf_link_is_fresh_each_time_and_unknown_invoices_are_404(cb, fake):  # noqa: F811
    fake.create_subscription("org_1", "team-monthly", 1, id="sub_1")
    invoice = fake.renew_now("sub_1")
    one = cb.Invoice.pdf(invoice["id"]).download
    two = cb.Invoice.pdf(invoice["id"]).download
    assert one.download_url != two.download_url and one.download_url.endswith(".pdf") and one.valid_till
    with pytest.raises(InvalidRequestError):
        cb.Invoice.pdf("inv_nope")


def test_the_sandbox_serves_the_pdf_behind_a_link(client, sandbox):  # noqa: F811
    fake = runtime.chargebee()
    fake.create_subscription("org_1", sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 1, id="sub_1")
    invoice = fake.renew_now("sub_1")
    link = fake.invoice_pdf(invoice["id"], "http://testserver/sandbox/chargebee")["download_url"]

    response = client.get(link.removeprefix("http://testserver"))

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content == invoice_pdf_bytes(fake.get_invoice(invoice["id"]))
    assert response.content.startswith(b"%PDF-1.4") and response.content.rstrip().endswith(b"%%EOF")
    assert client.get("/sandbox/chargebee/invoices/nope.pdf").status_code == 404


def test_console_knobs_fail_the_next_charge_and_renew_now(client, sandbox):  # noqa: F811
    fake = runtime.chargebee()
    fake.create_subscription("org_1", sandbox.CHARGEBEE_PLAN_ITEM_PRICE_ID, 1, id="sub_1")
    assert "Fail the next charge" in client.get("/sandbox/").content.decode()
    client.post("/sandbox/renewal", {"fail_next": "1"})
    answer = client.post("/sandbox/renewal", {"renew": "1", "subscription_id": "sub_1"})
    assert answer.status_code == 302
    assert fake.get_subscription("sub_1")["due_invoices_count"] == 1
    assert "payment_due" in client.get("/sandbox/").content.decode()
