"""What billing managers do with invoices: list them (local table) and download one (Chargebee link).

Plain functions of the signed-in ``BillingContext``, called by the page and
JSON views. The list never calls Chargebee. A download asks Chargebee for a
fresh link at click time (it expires within the hour), authorized and
throttled like every Chargebee call; the link is handed back, never stored
or logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.paginator import Page, Paginator
from django.db.models import Count, Window
from django.urls import reverse
from django.utils.translation import gettext as _

from .authorization import Action, authorize_reference, require_organization, throttle
from .chargebee_gateway import ChargebeeError, get_gateway
from .checkout import vendor_problem
from .errors import NotFound
from .invoices import listed_invoices
from .middleware import BillingContext
from .models import Invoice
from .money import format_money
from .shown_dates import ShownDate, shown_date

PAGE_SIZE = 10
MAX_PAGE = 100_000  # larger numbers go to the paginator (the last page), never into an OFFSET


@dataclass(frozen=True)
class Download:
    url: str
    valid_till: datetime | None


def invoice_page(context: BillingContext | None, number: object = 1) -> Page:
    """One page of the organization's invoices, newest first (an out-of-range number gives the last)."""
    organization = authorize_reference(context, require_organization(context).pk, Action.INVOICES)
    invoices = listed_invoices(organization.pk)
    paginator = Paginator(invoices, PAGE_SIZE)
    wanted = 1 if number in (None, "") else number
    if isinstance(wanted, int | str) and str(wanted).isdecimal() and 1 <= int(wanted) <= MAX_PAGE:
        # One query for the page and the count: COUNT(*) OVER () rides on each row of the page.
        start = (int(wanted) - 1) * PAGE_SIZE
        rows = list(invoices.annotate(listed=Window(Count("pk")))[start : start + PAGE_SIZE])
        if rows or start == 0:
            paginator.count = rows[0].listed if rows else 0  # a cached_property: the paginator asks no more
            return Page(rows, int(wanted), paginator)
    # Past the last page or not a page number: the paginator's own answer (the last page, or the first).
    return paginator.get_page(number)


@dataclass(frozen=True)
class InvoiceRow:
    """One invoice as the billing page lists it, its texts worked out once (a page lists up to ``PAGE_SIZE``)."""

    id: str
    date: ShownDate | None
    total: str  # "$45.00"
    due: str  # "($12.00 due)", or "" when nothing is due
    status: str
    pdf_url: str  # the download form's action
    download_label: str  # the download button's accessible name, naming the invoice


def shown_invoices(invoices: Iterable[Invoice]) -> list[InvoiceRow]:
    """The rows of one page of invoices (``invoice_page``), in the active language."""
    return [
        InvoiceRow(
            id=invoice.id,
            date=shown_date(invoice.date),
            total=format_money(invoice.total, invoice.currency),
            due=_("(%(due)s due)") % {"due": format_money(invoice.amount_due, invoice.currency)}
            if invoice.amount_due
            else "",
            status=_("Void") if invoice.is_void else str(invoice.get_status_display()),
            pdf_url=reverse("orgbilling:invoice-pdf", args=[invoice.id]),
            download_label=_("Download PDF of invoice %(id)s") % {"id": invoice.id},
        )
        for invoice in invoices
    ]


def download_invoice(context: BillingContext | None, invoice_id: object) -> Download:
    """A fresh PDF link for one of the organization's invoices.

    404 for an invoice that is not the organization's (or gone from
    Chargebee), 403 for members, 429 over the throttle, 502 when Chargebee fails.
    """
    organization = require_organization(context)
    if not isinstance(invoice_id, str) or not listed_invoices(organization.pk).filter(pk=invoice_id).exists():
        raise NotFound(_("No such invoice in your organization."))
    authorize_reference(context, organization.pk, Action.INVOICES)
    throttle(context, organization)
    try:
        download = get_gateway().invoice_pdf(invoice_id)
    except ChargebeeError as exc:
        if exc.api_error_code == "resource_not_found":
            raise NotFound(_("This invoice is no longer available in Chargebee.")) from exc
        raise vendor_problem(exc) from exc
    valid_till = download.get("valid_till")
    return Download(
        download["download_url"], datetime.fromtimestamp(valid_till, tz=UTC) if isinstance(valid_till, int) else None
    )
