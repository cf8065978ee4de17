"""Payment sources in the fake Chargebee: the card a checkout paid with, replacing it, and listing them.

`PaymentSourcesMixin` is mixed into `FakeChargebee` before `ChargebeeState`: its `_card_used`
replaces the state's no-op hook so a paid checkout leaves a `payment_source` (and the customer's
`primary_payment_source_id`), with `payment_source_added`. `ROUTES` adds `GET /payment_sources`
and `POST /hosted_pages/manage_payment_sources`. Shapes follow Chargebee's payment_source object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.fake_chargebee_invoices import list_page
from sandbox.fake_chargebee_store import Body, Store, new_id, param_required

PAGE_TTL = 3600
BRANDS = (("4", "visa"), ("5", "mastercard"), ("34", "american_express"), ("37", "american_express"))


def card_brand(number: str) -> str:
    return next((brand for prefix, brand in BRANDS if number.startswith(prefix)), "other")


class PaymentSourcesMixin:
    """What Chargebee does with payment sources; `store`, `_record`, `_changes` come from `ChargebeeState`."""

    store: Store
    _record: Callable[..., None]
    _changes: Callable[..., Any]

    def add_card(self, customer_id: str, number: str, expiry_month: int = 12, expiry_year: int = 2030) -> Body:
        """Make this card the customer's primary payment source, replacing the previous one."""
        with self._changes() as events:
            return self._card_used(events, customer_id, number, expiry_month, expiry_year)

    def primary_source(self, customer_id: str) -> Body | None:
        customer = self.store.get("customer", customer_id) or {}
        return self.store.get("payment_source", customer.get("primary_payment_source_id") or "")

    def open_manage_payment_sources(self, customer_id: str, site_url: str, redirect_url: str | None) -> Body:
        self.store.require("customer", customer_id, param="customer[id]")
        now, page_id = self.store.now(), new_id("__test__", 32)
        page = {
            "id": page_id,
            "type": "manage_payment_sources",
            "url": f"{site_url}/manage_payment_sources/{page_id}/",
            "state": "created",
            "embed": False,
            "created_at": now,
            "expires_at": now + PAGE_TTL,
            "object": "hosted_page",
        }
        self.store.put("card_page", {"id": page_id, "customer_id": customer_id, "redirect_url": redirect_url})
        return self.store.put("hosted_page", self.store.touch(page))

    def _card_used(
        self, events: list[Body], customer_id: str, number: str, expiry_month: int = 12, expiry_year: int = 2030
    ) -> Body:
        customer = self.store.require("customer", customer_id)
        previous = self.store.get("payment_source", customer.get("primary_payment_source_id") or "")
        if previous is not None:
            previous = dict(previous, deleted=True)
            self.store.put("payment_source", self.store.touch(previous))
        source = {
            "id": new_id("pm_"),
            "customer_id": customer_id,
            "type": "card",
            "status": "valid",
            "gateway": "chargebee",
            "reference_id": new_id("tok_"),
            "created_at": self.store.now(),
            "deleted": False,
            "object": "payment_source",
            "card": {
                "brand": card_brand(number),
                "last4": number[-4:],
                "expiry_month": expiry_month,
                "expiry_year": expiry_year,
                "masked_number": "*" * (len(number) - 4) + number[-4:],
                "funding_type": "credit",
                "object": "card",
            },
        }
        self.store.put("payment_source", self.store.touch(source))
        customer = dict(customer, primary_payment_source_id=source["id"], card_status="valid")
        self.store.put("customer", self.store.touch(customer))
        if previous is not None:
            self._record(events, "payment_source_deleted", "hosted_page", payment_source=previous, customer=customer)
        self._record(events, "payment_source_added", "hosted_page", payment_source=source, customer=customer)
        return source

    def _list_payment_sources(self, request: Any) -> Body:
        return list_page(self.store, "payment_source", request.params, ("id", "customer_id", "type", "status"))

    def _manage_payment_sources(self, request: Any) -> Body:
        customer_id = request.params.get("customer[id]")
        if not customer_id:
            raise param_required("customer[id]")
        redirect_url = request.params.get("redirect_url")
        return {"hosted_page": self.open_manage_payment_sources(customer_id, request.site_url, redirect_url)}


ROUTES: list[tuple[str, str, Callable[..., Body]]] = [
    ("GET", r"/payment_sources", PaymentSourcesMixin._list_payment_sources),
    ("POST", r"/hosted_pages/manage_payment_sources", PaymentSourcesMixin._manage_payment_sources),
]
