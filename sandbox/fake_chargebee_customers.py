"""Billing details in the fake Chargebee: `POST /customers/{id}/update_billing_info`, with VAT id checks.

Chargebee validates a VAT number's format for the billing country (and refuses one it cannot
read with `param_wrong_value` on `vat_number`); the fake checks the EU format: optional two-letter
country prefix, then 8 to 12 letters and digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.fake_chargebee_store import Body, ChargebeeApiError, Store, param_required, param_wrong_value

VAT_FORMAT = re.compile(r"(?:[A-Z]{2})?[0-9A-Z]{8,12}")
ADDRESS_KEYS = ("first_name", "last_name", "email", "company", "line1", "line2", "city", "state", "zip", "country")


class CustomersMixin:
    store: Store
    _record: Callable[..., None]
    _changes: Callable[..., Any]

    def update_billing_info(self, customer_id: str, address: dict[str, str], vat_number: str | None) -> Body:
        """Replace the billing address (and VAT number when given), as Chargebee does; customer_changed."""
        if vat_number and not VAT_FORMAT.fullmatch(vat_number.replace(" ", "").upper()):
            raise ChargebeeApiError(
                400, "param_wrong_value", "vat_number : The VAT number is not in a valid format", "vat_number"
            )
        country = address.get("country") or ""
        if country and not re.fullmatch(r"[A-Z]{2}", country):
            raise param_wrong_value("billing_address[country]", "invalid country code")
        with self._changes() as events:
            customer = dict(self.store.require("customer", customer_id))
            customer["billing_address"] = {
                **{key: value for key, value in address.items() if value},
                "validation_status": "not_validated",
                "object": "billing_address",
            }
            if vat_number is not None:
                customer["vat_number"] = vat_number
                customer["vat_number_status"] = "valid" if vat_number else "undetermined"
            self.store.put("customer", self.store.touch(customer))
            self._record(events, "customer_changed", "api", customer=customer)
            return customer

    def _update_billing_info(self, request: Any, customer_id: str) -> Body:
        params = request.params
        given = {key: f"billing_address[{key}]" for key in ADDRESS_KEYS}
        address = {key: params[param] for key, param in given.items() if param in params}
        if not address and "vat_number" not in params:
            raise param_required("billing_address[line1]")
        return {"customer": self.update_billing_info(customer_id, address, params.get("vat_number"))}


ROUTES: list[tuple[str, str, Callable[..., Body]]] = [
    ("POST", r"/customers/([^/]+)/update_billing_info", CustomersMixin._update_billing_info),
]
