"""The fake Chargebee's pages about payments: an invoice PDF, paying dues (collect_now), replacing the card."""

from __future__ import annotations

import time

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from sandbox import outbound, runtime
from sandbox.chargebee_views import _error, _luhn_ok, _money
from sandbox.fake_chargebee_invoices import invoice_pdf_bytes
from sandbox.fake_chargebee_store import DECLINED_CARD


@require_GET
def invoice_pdf(request: HttpRequest, token: str) -> HttpResponse:
    """What an `Invoice.pdf` download_url serves while it is valid (an hour), like Chargebee's."""
    invoice = runtime.chargebee().downloaded_invoice(token)
    if invoice is None:
        raise Http404("This download link has expired.")
    response = HttpResponse(invoice_pdf_bytes(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="invoice-{invoice["id"]}.pdf"'
    return response


@require_http_methods(["GET", "POST"])
def collect_now(request: HttpRequest, page_id: str) -> HttpResponse:
    """Chargebee's page for paying every due invoice: 4111 1111 1111 1111 pays, 4000 0000 0000 0002 is declined."""
    fake = runtime.chargebee()
    page, order = fake.store.get("hosted_page", page_id), fake.store.get("collect", page_id)
    if page is None or order is None:
        return _error(request, "This payment link is not valid.", 404)
    if page["state"] != "created" or page["expires_at"] < time.time():
        return _error(request, "This payment link was used or has expired. Start again from the application.", 410)
    due = fake.due_invoices(order["customer_id"])
    context = {
        "invoices": [{"id": invoice["id"], "due": _money(invoice["amount_due"])} for invoice in due],
        "total": _money(sum(invoice["amount_due"] for invoice in due)),
    }
    if request.method == "POST":
        number = "".join(ch for ch in request.POST.get("card_number", "") if ch.isdigit())
        if not _luhn_ok(number) or number == DECLINED_CARD:
            context["error"] = "Your card was declined." if _luhn_ok(number) else "Your card number is incorrect."
            return render(request, "sandbox/collect_now.html", context, status=400)
        fake.collect_dues(order["customer_id"])
        fake.store.put("hosted_page", fake.store.touch(dict(page, state="succeeded")))
        if not order.get("redirect_url"):
            return _error(request, "Payment successful. You can close this page.", 200)
        return HttpResponseRedirect(outbound.with_query(order["redirect_url"], id=page_id, state="succeeded"))
    return render(request, "sandbox/collect_now.html", context)


def _expiry(value: str) -> tuple[int, int] | None:
    month, _, year = value.partition("/")
    try:
        month_number, year_number = int(month), 2000 + int(year)
    except ValueError:
        return None
    return (month_number, year_number) if 1 <= month_number <= 12 else None


@require_http_methods(["GET", "POST"])
def manage_payment_sources(request: HttpRequest, page_id: str) -> HttpResponse:
    """Chargebee's page for replacing the card on file; back to the app when saved."""
    fake = runtime.chargebee()
    page, order = fake.store.get("hosted_page", page_id), fake.store.get("card_page", page_id)
    if page is None or order is None:
        return _error(request, "This link is not valid.", 404)
    if page["state"] != "created" or page["expires_at"] < time.time():
        return _error(request, "This link was used or has expired. Start again from the application.", 410)
    context = {"current": fake.primary_source(order["customer_id"])}
    if request.method == "POST":
        number = "".join(ch for ch in request.POST.get("card_number", "") if ch.isdigit())
        expiry = _expiry(request.POST.get("expiry", ""))
        if not _luhn_ok(number) or expiry is None:
            context["error"] = "Your card number or expiry is incorrect."
            return render(request, "sandbox/manage_payment_sources.html", context, status=400)
        fake.add_card(order["customer_id"], number, *expiry)
        fake.store.put("hosted_page", fake.store.touch(dict(page, state="succeeded")))
        if not order.get("redirect_url"):
            return _error(request, "Your card is saved. You can close this page.", 200)
        return HttpResponseRedirect(outbound.with_query(order["redirect_url"], id=page_id, state="succeeded"))
    return render(request, "sandbox/manage_payment_sources.html", context)
