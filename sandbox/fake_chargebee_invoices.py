"""Invoices in the fake Chargebee: made at checkout, change and renewal, listed, and downloaded as PDF.

`InvoicingMixin` is mixed into `FakeChargebee` before `ChargebeeState`: it replaces the state's
`_charge` hook (which only builds a receipt) with one that stores the invoice and records
`invoice_generated` and `payment_succeeded`, or, after `fail_next_charge()`, a due invoice,
`payment_failed` and the subscription's dunning fields; `collect_dues` pays them back. `ROUTES`
adds the API endpoints (`GET /invoices`, `GET /invoices/{id}`, `POST /invoices/{id}/pdf`,
`POST /hosted_pages/collect_now`) to the fake's route table.
Shapes follow Chargebee's published invoice and download objects (API v2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.fake_chargebee_store import (
    Body,
    ChargebeeApiError,
    Filter,
    Store,
    add_month,
    new_id,
    paid_invoice,
    param_required,
    param_wrong_value,
)

PDF_TTL = 3600  # Chargebee's download links are valid for an hour
DUNNING_RETRY = 3 * 86400
LISTABLE = ("id", "customer_id", "subscription_id", "status")


class InvoicingMixin:
    """What Chargebee does with invoices; `store` and `_record` come from `ChargebeeState`."""

    store: Store
    _record: Callable[..., None]
    _changes: Callable[..., Any]
    _live_subscription: Callable[..., Body]
    _save_change: Callable[..., Body]

    def fail_next_charge(self, fail: bool = True) -> None:
        """Decline the next charge of any subscription (a renewal, a change), as a failing card would."""
        self.store.put("knob", {"id": "fail_next_charge", "on": fail})

    def get_invoice(self, invoice_id: str) -> Body | None:
        return self.store.get("invoice", invoice_id)

    def renew_now(self, sub_id: str) -> Body:
        """Start the next term now, as Chargebee's scheduler does at the term's end, and bill it."""
        with self._changes() as events:
            sub = self._live_subscription(sub_id)
            now = self.store.now()
            sub.update(current_term_start=now, current_term_end=add_month(now), next_billing_at=add_month(now))
            invoice = self._charge(events, sub, "scheduled_job", may_fail=True)
            self._save_change(events, sub, "subscription_renewed", "scheduled_job")
            return invoice

    def void_invoice(self, invoice_id: str) -> Body:
        with self._changes() as events:
            invoice = dict(self.store.require("invoice", invoice_id), status="voided", amount_due=0)
            invoice.pop("dunning_status", None)
            self.store.put("invoice", self.store.touch(invoice))
            self._record(events, "invoice_updated", "admin_console", invoice=invoice)
            return invoice

    def delete_invoice(self, invoice_id: str) -> Body:
        with self._changes() as events:
            invoice = dict(self.store.require("invoice", invoice_id), deleted=True)
            self.store.put("invoice", self.store.touch(invoice))
            self._record(events, "invoice_deleted", "admin_console", invoice=invoice)
            return invoice

    def invoice_pdf(self, invoice_id: str, site_url: str) -> Body:
        invoice = self.store.get("invoice", invoice_id)
        if invoice is None or invoice.get("deleted"):
            raise ChargebeeApiError(404, "resource_not_found", f"invoice {invoice_id} not found")
        token, valid_till = new_id(length=32), self.store.now() + PDF_TTL
        self.store.put("download", {"id": token, "invoice_id": invoice_id, "valid_till": valid_till})
        url = f"{site_url}/invoices/{token}.pdf"
        return {"download_url": url, "valid_till": valid_till, "mime_type": "application/pdf", "object": "download"}

    def downloaded_invoice(self, token: str) -> Body | None:
        """The invoice a download link is for, while the link is valid."""
        download = self.store.get("download", token)
        if download is None or download["valid_till"] < self.store.now():
            return None
        return self.store.get("invoice", download["invoice_id"])

    def open_collect_now(self, customer_id: str, site_url: str, redirect_url: str | None) -> Body:
        """A collect_now hosted page: the customer pays every due invoice there."""
        self.store.require("customer", customer_id, param="customer[id]")
        now, page_id = self.store.now(), new_id("__test__", 32)
        page = {
            "id": page_id,
            "type": "collect_now",
            "url": f"{site_url}/collect_now/{page_id}/",
            "state": "created",
            "embed": False,
            "created_at": now,
            "expires_at": now + PDF_TTL,
            "object": "hosted_page",
        }
        self.store.put("collect", {"id": page_id, "customer_id": customer_id, "redirect_url": redirect_url})
        return self.store.put("hosted_page", self.store.touch(page))

    def due_invoices(self, customer_id: str) -> list[Body]:
        return [inv for inv in self.store.find("invoice", [("customer_id", "is", customer_id)]) if _due(inv)]

    def collect_dues(self, customer_id: str, source: str = "hosted_page") -> list[Body]:
        """Pay every due invoice of the customer, as a successful collect_now payment does."""
        with self._changes() as events:
            customer = self.store.require("customer", customer_id)
            paid = []
            for invoice in self.due_invoices(customer_id):
                invoice.update(status="paid", amount_paid=invoice["total"], amount_due=0, paid_at=self.store.now())
                invoice.pop("dunning_status", None)
                invoice.pop("next_retry_at", None)
                self.store.put("invoice", self.store.touch(invoice))
                sub = self.store.get("subscription", invoice.get("subscription_id") or "")
                content: Body = {"invoice": invoice, "customer": customer}
                if sub is not None:
                    dues = [due for due in self._due_invoices(customer_id, sub["id"]) if due["id"] != invoice["id"]]
                    sub.update(due_invoices_count=len(dues), total_dues=sum(due["amount_due"] for due in dues))
                    if not dues:
                        sub.pop("due_since", None)
                    content["subscription"] = self.store.put("subscription", self.store.touch(sub))
                self._record(events, "payment_succeeded", source, **content)
                paid.append(invoice)
            return paid

    def _charge(self, events: list[Body], sub: Body, source: str, may_fail: bool = False) -> Body:
        """Invoice the subscription's current items in full (no proration) and collect them.

        A renewal (`may_fail`) after `fail_next_charge()` leaves the invoice due instead and
        sets the subscription's dunning fields; the caller saves the subscription.
        """
        now = self.store.now()
        invoice = paid_invoice(sub, now)
        invoice["due_date"] = now
        customer = self.store.require("customer", sub["customer_id"])
        if may_fail and self._take_failure():
            invoice.update(status="payment_due", amount_paid=0, amount_due=invoice["total"], paid_at=None)
            invoice.update(dunning_status="in_progress", next_retry_at=now + DUNNING_RETRY)
            dues = self._due_invoices(sub["customer_id"], sub["id"]) + [invoice]
            sub.update(
                due_invoices_count=len(dues),
                due_since=min(due["date"] for due in dues),
                total_dues=sum(due["amount_due"] for due in dues),
            )
        self.store.put("invoice", self.store.touch(invoice))
        self._record(events, "invoice_generated", source, invoice=invoice, customer=customer)
        outcome = "payment_failed" if invoice["status"] == "payment_due" else "payment_succeeded"
        if outcome == "payment_failed":
            self.store.put("subscription", self.store.touch(sub))
        self._record(events, outcome, source, invoice=invoice, customer=customer, subscription=sub)
        return invoice

    def _take_failure(self) -> bool:
        knob = self.store.get("knob", "fail_next_charge")
        if knob and knob["on"]:
            self.store.put("knob", {"id": "fail_next_charge", "on": False})
            return True
        return False

    def _due_invoices(self, customer_id: str, sub_id: str) -> list[Body]:
        filters: list[Filter] = [("customer_id", "is", customer_id), ("subscription_id", "is", sub_id)]
        return [inv for inv in self.store.find("invoice", filters) if _due(inv)]

    # ----- API handlers (request: the fake's parsed request) ----------------------------------

    def _list_invoices(self, request: Any) -> Body:
        return list_page(self.store, "invoice", request.params, LISTABLE)

    def _retrieve_invoice(self, request: Any, invoice_id: str) -> Body:
        return {"invoice": self.store.require("invoice", invoice_id)}

    def _invoice_pdf(self, request: Any, invoice_id: str) -> Body:
        return {"download": self.invoice_pdf(invoice_id, request.site_url)}

    def _collect_now(self, request: Any) -> Body:
        customer_id = request.params.get("customer[id]")
        if not customer_id:
            raise param_required("customer[id]")
        return {"hosted_page": self.open_collect_now(customer_id, request.site_url, request.params.get("redirect_url"))}


def _due(invoice: Body) -> bool:
    return invoice["status"] in ("payment_due", "not_paid") and not invoice.get("deleted")


def list_page(store: Store, kind: str, params: dict[str, str], filterable: tuple[str, ...]) -> Body:
    """A page of `kind`, newest first: `field[is]` filters, `updated_at[after]`, `include_deleted`."""
    filters: list[Filter] = []
    for key, value in params.items():
        if (m := re.fullmatch(r"(\w+)\[is\]", key)) and m[1] in filterable:
            filters.append((m[1], "is", value))
    if (value := params.get("updated_at[after]")) is not None:
        filters.append(("updated_at", "after", _number(value, "updated_at[after]")))
    if (params.get("include_deleted") or "").lower() != "true":
        filters.append(("deleted", "is", False))
    with store.transaction():
        objects, next_offset = store.page(kind, filters, _limit(params.get("limit")), params.get("offset"))
    body: Body = {"list": [{kind: obj} for obj in objects]}
    if next_offset:
        body["next_offset"] = next_offset
    return body


def _number(value: str, param: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise param_wrong_value(param, "must be an integer") from None


def _limit(value: str | None) -> int:
    limit = 10 if value in (None, "") else _number(value, "limit")
    if not 1 <= limit <= 100:
        raise param_wrong_value("limit", "must be between 1 and 100")
    return limit


ROUTES: list[tuple[str, str, Callable[..., Body]]] = [
    ("GET", r"/invoices", InvoicingMixin._list_invoices),
    ("GET", r"/invoices/([^/]+)", InvoicingMixin._retrieve_invoice),
    ("POST", r"/invoices/([^/]+)/pdf", InvoicingMixin._invoice_pdf),
    ("POST", r"/hosted_pages/collect_now", InvoicingMixin._collect_now),
]


def invoice_pdf_bytes(invoice: Body) -> bytes:
    """A small, valid one-page PDF naming the invoice, its date and total (what Chargebee's link serves)."""
    total = f"{invoice.get('currency_code', 'USD')} {invoice.get('total', 0) / 100:,.2f}"
    text = f"Invoice {invoice['id']}  Status {invoice['status']}  Total {total}"
    text = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
