"""Item prices in the fake Chargebee: the plan catalog, listed and changed in the console.

`PricesMixin` is mixed into `FakeChargebee` before `ChargebeeState`. Item prices are stored as
Chargebee's ItemPrice objects (API v2, Product Catalog 2.0: `price` in minor units, `period`,
`period_unit`, `pricing_model` with `tiers`, `trial_period`, `external_name`, `status`,
`resource_version`); changing one records `item_price_created`, `item_price_updated` (also when it
is archived) or `item_price_deleted`, which the sandbox sends as webhooks. Checkouts read the
stored price: its amount (per seat, flat, or from the tiers), trial and currency, and refuse an
archived or deleted one, as Chargebee does. `ROUTES` adds `GET /item_prices` (filters
`item_type[is]`, `status[is]`, `item_id[is]`, `currency_code[is]`, `period_unit[is]`,
`updated_at[after]`; 100 a page with `offset`) and `GET /item_prices/{id}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.fake_chargebee_invoices import list_page
from sandbox.fake_chargebee_store import Body, ChargebeeApiError, Store, not_found, param_wrong_value, subscription_item

LISTABLE = ("id", "item_id", "item_type", "status", "currency_code", "period_unit", "pricing_model")
TRIAL_UNIT_DAYS = {"day": 1, "month": 30}


def item_price_object(
    price_id: str,
    *,
    item_id: str,
    external_name: str,
    currency_code: str = "USD",
    price: int | None = None,
    period_unit: str = "month",
    period: int = 1,
    pricing_model: str = "per_unit",
    tiers: list[Body] | None = None,
    trial_period: int | None = None,
    trial_period_unit: str = "day",
    description: str = "",
    now: int = 0,
) -> Body:
    """An ItemPrice as Chargebee returns it (only the fields it always or here sets)."""
    body: Body = {
        "id": price_id,
        "name": price_id,
        "item_family_id": "sandbox",
        "item_id": item_id,
        "status": "active",
        "external_name": external_name,
        "pricing_model": pricing_model,
        "period": period,
        "period_unit": period_unit,
        "currency_code": currency_code,
        "free_quantity": 0,
        "channel": "web",
        "created_at": now,
        "is_taxable": True,
        "item_type": "plan",
        "archivable": True,
        "deleted": False,
        "object": "item_price",
    }
    if description:
        body["description"] = description
    if pricing_model in ("per_unit", "flat_fee"):
        body["price"] = price or 0
    else:
        body["tiers"] = [dict(tier, object="tier") for tier in tiers or []]
    if trial_period:
        body.update(trial_period=trial_period, trial_period_unit=trial_period_unit)
    return body


class PricesMixin:
    """What Chargebee does with item prices; `store`, `_changes` and `_record` come from `ChargebeeState`."""

    store: Store
    _record: Callable[..., None]
    _changes: Callable[..., Any]

    def get_item_price(self, price_id: str) -> Body | None:
        return self.store.get("item_price", price_id)

    def put_item_price(self, body: Body, source: str = "admin_console") -> Body:
        """Create or replace an item price whole; records item_price_created or item_price_updated."""
        with self._changes() as events:
            existed = self.store.exists("item_price", body["id"])
            stored = self.store.put("item_price", self.store.touch(dict(body)))
            self._record(events, "item_price_updated" if existed else "item_price_created", source, item_price=stored)
            return stored

    def seed_item_prices(self, bodies: list[Body]) -> list[Body]:
        """Create the prices not there yet (a restart keeps the console's changes to the others)."""
        return [self.put_item_price(body) for body in bodies if not self.store.exists("item_price", body["id"])]

    def update_item_price(self, price_id: str, source: str = "admin_console", **fields: Any) -> Body:
        """Change some fields (price, external_name, trial_period, status...); records item_price_updated."""
        with self._changes() as events:
            body = self._stored_price(price_id)
            if body.get("deleted"):
                raise not_found("item_price", price_id)
            body.update(fields)
            if body.get("trial_period") in (None, 0):
                body.pop("trial_period", None)
                body.pop("trial_period_unit", None)
            stored = self.store.put("item_price", self.store.touch(body))
            self._record(events, "item_price_updated", source, item_price=stored)
            return stored

    def archive_item_price(self, price_id: str, source: str = "admin_console") -> Body:
        """No longer sold to new subscriptions; existing ones keep it. Chargebee says so with item_price_updated."""
        return self.update_item_price(price_id, source, status="archived", archived_at=self.store.now())

    def delete_item_price(self, price_id: str, source: str = "admin_console") -> Body:
        with self._changes() as events:
            body = dict(self._stored_price(price_id), status="deleted", deleted=True)
            stored = self.store.put("item_price", self.store.touch(body))
            self._record(events, "item_price_deleted", source, item_price=stored)
            return stored

    def _stored_price(self, price_id: str) -> Body:
        return self.store.require("item_price", price_id)

    # ----- what checkouts read (overrides ChargebeeState) --------------------------------------

    def _price(self, item_price_id: str, param: str | None = None) -> Body:
        body = self.store.get("item_price", item_price_id)
        if body is None:
            return super()._price(item_price_id, param)  # type: ignore[misc]
        if body["status"] != "active" or body.get("deleted"):
            raise ChargebeeApiError(400, "invalid_request", f"Item price {item_price_id} is {body['status']}", param)
        read = {
            "price": body.get("price", 0),
            "item_type": body.get("item_type", "plan"),
            "currency_code": body["currency_code"],
            "pricing_model": body["pricing_model"],
            "tiers": body.get("tiers") or [],
        }
        if body.get("trial_period"):
            read["trial_days"] = body["trial_period"] * TRIAL_UNIT_DAYS.get(body.get("trial_period_unit"), 1)
        return read

    def item(
        self, item_price_id: str, index: int, quantity: int = 1, unit_price: int | None = None, param: str | None = None
    ) -> Body:
        price = self._price(item_price_id, param)
        if unit_price is not None or not price.get("tiers") and price.get("pricing_model") != "flat_fee":
            return super().item(item_price_id, index, quantity, unit_price, param)  # type: ignore[misc]
        amount = charge(price, quantity)
        item_type = price.get("item_type") or ("plan" if index == 0 else "addon")
        item = subscription_item(item_price_id, item_type, quantity, amount // quantity)
        item["amount"] = amount  # tiers and flat fees do not divide evenly into seats
        return item

    # ----- API handlers ---------------------------------------------------------------------------

    def _list_item_prices(self, request: Any) -> Body:
        return list_page(self.store, "item_price", request.params, LISTABLE)

    def _retrieve_item_price(self, request: Any, price_id: str) -> Body:
        return {"item_price": self._stored_price(price_id)}


def charge(price: Body, quantity: int) -> int:
    """What `quantity` seats cost for one period under the price's pricing model."""
    model, tiers = price.get("pricing_model"), price.get("tiers") or []
    if model == "flat_fee":
        return price.get("price", 0)
    if model == "per_unit" or not tiers:
        return price.get("price", 0) * quantity
    if model == "tiered":  # each seat at its own tier's price
        return sum(tier["price"] * _seats_in(tier, quantity) for tier in tiers)
    ending = [tier for tier in tiers if tier["starting_unit"] <= quantity <= (tier.get("ending_unit") or quantity)]
    tier = ending[0] if ending else None
    if tier is None:
        raise param_wrong_value("quantity", "no tier covers it")
    return tier["price"] * quantity if model == "volume" else tier["price"]  # stairstep: the tier's flat price


def _seats_in(tier: Body, quantity: int) -> int:
    end = min(quantity, tier.get("ending_unit") or quantity)
    return max(0, end - tier["starting_unit"] + 1)


ROUTES: list[tuple[str, str, Callable[..., Body]]] = [
    ("GET", r"/item_prices", PricesMixin._list_item_prices),
    ("GET", r"/item_prices/([^/]+)", PricesMixin._retrieve_item_price),
]
