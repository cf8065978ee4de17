"""State and behaviour of the fake Chargebee, without any HTTP.

Objects are Chargebee-shaped JSON kept in sqlite, keyed by (kind, id), so one fake can back a
threaded demo server (and, with a file path, survive a restart) without an ORM. `ChargebeeState`
holds what Chargebee does to them - checkouts, cancellations, the events that follow - so that
fake_chargebee.py only parses requests and renders answers.
"""

from __future__ import annotations

import calendar
import json
import logging
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

Body = dict[str, Any]
EventCallback = Callable[[Body], None]
# (field, operator, value): operator is one of Chargebee's filter suffixes is / is_not / in / not_in / after.
Filter = tuple[str, str, Any]

# Chargebee's published (v1) OpenAPI error schemas put invalid_state_for_request under 409;
# clients should branch on api_error_code, not on this number.
INVALID_STATE_STATUS = 409
DECLINED_CARD = "4000000000000002"
HOSTED_PAGE_TTL = 3 * 3600  # checkout pages expire 3 hours after creation
PORTAL_SESSION_TTL = 3600
SEED_TRIAL_DAYS = 14  # create_subscription(status="in_trial") when the price has no trial_days
CUSTOMER_FIELDS = ("first_name", "last_name", "email", "company", "phone", "locale")

# Legacy `error_code` values that differ from `api_error_code` (seen in chargebee-ruby's spec).
_LEGACY_ERROR_CODES = {"duplicate_entry": "param_not_unique"}
_ID_ALPHABET = string.ascii_letters + string.digits


# ----- errors -------------------------------------------------------------------------------------


class ChargebeeApiError(Exception):
    """A failure that renders as a Chargebee error body, so HTTP and simulation calls fail alike."""

    def __init__(
        self,
        status: int,
        api_error_code: str,
        message: str,
        param: str | None = None,
        error_type: str | None = "invalid_request",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.api_error_code = api_error_code
        self.message = message
        self.param = param
        self.error_type = error_type

    def body(self) -> Body:
        """The JSON body, with the legacy fields older clients still read."""
        body = {
            "message": self.message,
            "type": self.error_type,
            "api_error_code": self.api_error_code,
            "param": self.param,
            "error_code": _LEGACY_ERROR_CODES.get(self.api_error_code, self.api_error_code),
            "error_msg": self.message,
            "error_param": self.param,
            "http_status_code": self.status,
        }
        return {key: value for key, value in body.items() if value is not None}


class CardDeclined(ChargebeeApiError):
    """The test card 4000000000000002 was used: the checkout fails and nothing is recorded."""

    def __init__(self) -> None:
        super().__init__(
            400,
            "payment_processing_failed",
            "Subscription cannot be created as we are not able to collect the amount from your card. "
            "Error message: (card_declined) Your card was declined.",
            error_type="payment",
        )


def not_found(kind: str, object_id: str, param: str | None = None) -> ChargebeeApiError:
    return ChargebeeApiError(404, "resource_not_found", f"{kind} {object_id} not found", param)


def invalid_state(message: str) -> ChargebeeApiError:
    return ChargebeeApiError(INVALID_STATE_STATUS, "invalid_state_for_request", message)


def param_required(param: str) -> ChargebeeApiError:
    return ChargebeeApiError(400, "param_required", f"{param}: cannot be blank", param)


def param_wrong_value(param: str, problem: str) -> ChargebeeApiError:
    return ChargebeeApiError(400, "param_wrong_value", f"{param}: {problem}", param)


def duplicate_entry(param: str, value: str) -> ChargebeeApiError:
    return ChargebeeApiError(400, "duplicate_entry", f"{param}: The value {value} is already present.", param)


def new_id(prefix: str = "", length: int = 16) -> str:
    """A random id in Chargebee's style (mixed-case alphanumerics), unguessable like theirs."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


# ----- storage ------------------------------------------------------------------------------------


class Store:
    """One sqlite connection behind a re-entrant lock; `transaction()` makes a change atomic."""

    def __init__(self, path: str = ":memory:", clock: Callable[[], float] = time.time) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._depth = 0
        self._clock = clock
        self._last_version = 0
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS objects (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (kind, id))"
        )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock for a whole read-modify-write; only the outermost level commits."""
        with self._lock:
            outermost = self._depth == 0
            if outermost:
                self._conn.execute("BEGIN")
            self._depth += 1
            try:
                yield
            except BaseException:
                if outermost:
                    self._conn.execute("ROLLBACK")
                raise
            else:
                if outermost:
                    self._conn.execute("COMMIT")
            finally:
                self._depth -= 1

    def now(self) -> int:
        """Unix seconds, as Chargebee timestamps are."""
        return int(self._clock())

    def touch(self, obj: Body) -> Body:
        """Stamp a change: resource_version is in ms and grows on every change, even within one ms."""
        with self._lock:
            self._last_version = max(self._last_version + 1, int(self._clock() * 1000))
            obj.update(updated_at=self.now(), resource_version=self._last_version)
        return obj

    def get(self, kind: str, object_id: str) -> Body | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM objects WHERE kind = ? AND id = ?", (kind, object_id)).fetchone()
        return json.loads(row[0]) if row else None

    def require(self, kind: str, object_id: str, param: str | None = None) -> Body:
        found = self.get(kind, object_id)
        if found is None:
            raise not_found(kind, object_id, param)
        return found

    def exists(self, kind: str, object_id: str) -> bool:
        return self.get(kind, object_id) is not None

    def put(self, kind: str, obj: Body) -> Body:
        """Insert or replace; a replaced object keeps its place in list order."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO objects (kind, id, data) VALUES (?, ?, ?)"
                " ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data",
                (kind, obj["id"], json.dumps(obj)),
            )
        return obj

    def delete(self, kind: str, object_id: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, object_id))

    def find(self, kind: str, filters: list[Filter]) -> list[Body]:
        """Every matching object, newest first."""
        return [obj for _, obj in self._select(kind, filters, None, None)]

    def page(self, kind: str, filters: list[Filter], limit: int, offset: str | None) -> tuple[list[Body], str | None]:
        """One page, newest first, and the opaque offset of the next page (None on the last)."""
        rows = self._select(kind, filters, limit + 1, _parse_offset(offset))
        next_offset = json.dumps([str(rows[limit - 1][0])]) if len(rows) > limit else None
        return [obj for _, obj in rows[:limit]], next_offset

    def _select(
        self, kind: str, filters: list[Filter], limit: int | None, before_seq: int | None
    ) -> list[tuple[int, Body]]:
        sql = ["SELECT seq, data FROM objects WHERE kind = ?"]
        args: list[Any] = [kind]
        if before_seq is not None:
            sql.append("AND seq < ?")
            args.append(before_seq)
        for field, operator, value in filters:
            clause, values = _filter_clause(field, operator, value)
            sql.append("AND " + clause)
            args.extend(values)
        sql.append("ORDER BY seq DESC")
        if limit is not None:
            sql.append("LIMIT ?")
            args.append(limit)
        with self._lock:
            rows = self._conn.execute(" ".join(sql), args).fetchall()
        return [(seq, json.loads(data)) for seq, data in rows]


def _filter_clause(field: str, operator: str, value: Any) -> tuple[str, list[Any]]:
    """SQL for one filter; the field goes in as a bound JSON path, never as SQL text."""
    path = "$." + field
    if operator == "is":
        return "json_extract(data, ?) = ?", [path, value]
    if operator == "is_not":
        return "json_extract(data, ?) IS NOT ?", [path, value]
    if operator in ("after", "before"):  # timestamps, in unix seconds
        return f"json_extract(data, ?) {'>' if operator == 'after' else '<'} ?", [path, value]
    negation = "NOT " if operator == "not_in" else ""
    return f"json_extract(data, ?) {negation}IN ({', '.join('?' for _ in value)})", [path, *value]


def _parse_offset(offset: str | None) -> int | None:
    """Offsets are the JSON list `["<seq>"]` this store hands out; anything else is a client bug."""
    if not offset:
        return None
    try:
        (seq,) = json.loads(offset)
        return int(seq)
    except (ValueError, TypeError):
        raise param_wrong_value("offset", "invalid offset") from None


# ----- behaviour ----------------------------------------------------------------------------------


class ChargebeeState:
    """What Chargebee does to its objects. Public methods are the simulation API: what customers
    (paying, cancelling) and Chargebee's scheduler do, for tests and the sandbox UI.

    `item_prices` maps item price id -> {"price": cents, "trial_days"?: int, "item_type"?: str};
    when given, other ids are refused as on a real site. Without `item_type` the first item of a
    checkout is the plan and the others are addons.
    """

    def __init__(
        self,
        path: str = ":memory:",
        item_prices: dict[str, Body] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = Store(path, clock)
        self._item_prices = item_prices
        self._callbacks_lock = threading.Lock()
        self._callbacks: list[EventCallback] = []

    def on_event(self, callback: EventCallback) -> EventCallback:
        """Register a listener for every recorded event (the sandbox turns them into webhooks)."""
        with self._callbacks_lock:
            self._callbacks.append(callback)
        return callback

    def create_customer(self, id: str | None = None, **fields: Any) -> Body:
        """Create a customer (`meta_data` as a dict); the id is generated when not given."""
        with self._changes() as events:
            return self._new_customer(events, id, fields, "api")

    def get_customer(self, customer_id: str) -> Body | None:
        return self.store.get("customer", customer_id)

    def get_subscription(self, sub_id: str) -> Body | None:
        return self.store.get("subscription", sub_id)

    def update_customer(self, customer_id: str, fields: Body) -> Body:
        """Set the given fields ("" clears one); meta_data is replaced whole, never merged."""
        with self._changes() as events:
            customer = self.store.require("customer", customer_id)
            customer = {key: value for key, value in {**customer, **fields}.items() if value != ""}
            self.store.put("customer", self.store.touch(customer))
            self._record(events, "customer_changed", "api", customer=customer)
            return customer

    def delete_customer(self, customer_id: str) -> Body:
        """Chargebee deletes a customer's subscriptions with it; the event lists them."""
        with self._changes() as events:
            customer = dict(self.store.touch(self.store.require("customer", customer_id)), deleted=True)
            subscriptions = self.store.find("subscription", [("customer_id", "is", customer_id)])
            for sub in subscriptions:
                self.store.delete("subscription", sub["id"])
                self.store.touch(sub)["deleted"] = True
            self.store.delete("customer", customer_id)
            self._record(events, "customer_deleted", "api", customer=customer, subscriptions=subscriptions)
            return customer

    def item(
        self, item_price_id: str, index: int, quantity: int = 1, unit_price: int | None = None, param: str | None = None
    ) -> Body:
        """A subscription item for a known item price; `index` decides plan vs addon when unconfigured."""
        price = self._price(item_price_id, param)
        item_type = price.get("item_type") or ("plan" if index == 0 else "addon")
        unit_price = price.get("price", 0) if unit_price is None else unit_price
        return subscription_item(item_price_id, item_type, quantity, unit_price)

    def open_checkout(self, page_type: str, site_url: str, checkout: Body, pass_thru_content: str | None) -> Body:
        """Create a checkout_new/checkout_existing hosted page. `checkout` is what paying will do:
        items, subscription_id, customer fields, trial_end, replace, redirect_url, cancel_url."""
        sub_id = checkout.get("subscription_id")
        with self._changes():
            if page_type == "checkout_new" and sub_id and self.store.exists("subscription", sub_id):
                raise duplicate_entry("subscription[id]", sub_id)
            if page_type == "checkout_existing":
                self._live_subscription(sub_id, param="subscription[id]")
            now, page_id = self.store.now(), new_id("__test__", 32)
            page = {
                "id": page_id,
                "type": page_type,
                "url": f"{site_url}/pages/v3/{page_id}/",
                "state": "created",
                "embed": False,
                "created_at": now,
                "expires_at": now + HOSTED_PAGE_TTL,
                "object": "hosted_page",
            }
            if pass_thru_content:
                page["pass_thru_content"] = pass_thru_content
            self.store.put("checkout", {**checkout, "id": page_id})
            return self.store.put("hosted_page", self.store.touch(page))

    def complete_hosted_page(self, page_id: str, card_number: str = "4111111111111111") -> Body:
        """Pay on a checkout page as a customer would; returns the succeeded hosted page."""
        with self._changes() as events:
            page = self.store.require("hosted_page", page_id)
            if page["state"] != "created":
                raise invalid_state(f"Hosted page {page_id} is in state {page['state']}")
            if card_number == DECLINED_CARD:
                raise CardDeclined()
            checkout = self.store.require("checkout", page_id)
            if page["type"] == "checkout_new":
                content = self._fulfil_new_checkout(events, checkout)
            else:
                content = self._fulfil_existing_checkout(events, checkout)
            self._card_used(events, content["customer"]["id"], card_number)
            page.update(state="succeeded", content=content)
            return self.store.put("hosted_page", self.store.touch(page))

    def acknowledge_hosted_page(self, page_id: str) -> Body:
        with self._changes():
            page = self.store.require("hosted_page", page_id)
            if page["state"] != "succeeded":
                raise invalid_state(f"Hosted page is in state {page['state']}; only succeeded can be acknowledged")
            page["state"] = "acknowledged"
            return self.store.put("hosted_page", self.store.touch(page))

    def add_webhook_endpoint(
        self,
        url: str,
        *,
        api_version: str = "v2",
        disabled: bool = False,
        enabled_events: list[str] | None = None,
    ) -> Body:
        """Configure a webhook endpoint, as in Settings > Webhooks; ``enabled_events`` None sends every event."""
        endpoint = {
            "id": new_id("whe_"),
            "name": "orgbilling",
            "url": url,
            "api_version": api_version,
            "disabled": disabled,
            "primary_url": False,
            "send_card_resource": False,
            "chargebee_response_schema_type": "items",
            "object": "webhook_endpoint",
        }
        if enabled_events is not None:
            endpoint["enabled_events"] = enabled_events
        return self.store.put("webhook_endpoint", endpoint)

    def create_portal_session(self, customer_id: str, site_url: str, redirect_url: str | None) -> Body:
        self.store.require("customer", customer_id, param="customer[id]")
        now, token = self.store.now(), new_id(length=32)
        session = {
            "id": new_id("portal_"),
            "token": token,
            "access_url": f"{site_url}/portal/v2/access/{token}",
            "redirect_url": redirect_url,
            "status": "created",
            "created_at": now,
            "expires_at": now + PORTAL_SESSION_TTL,
            "object": "portal_session",
            "customer_id": customer_id,
        }
        return self.store.put("portal_session", session)

    def create_subscription(
        self,
        customer_id: str,
        item_price_id: str,
        quantity: int,
        status: str = "active",
        id: str | None = None,
        meta_data: Body | None = None,
    ) -> Body:
        """Seed a subscription (and its customer, if new) as if made in the admin console.
        `status` is one of active, in_trial, non_renewing, cancelled."""
        if status not in ("active", "in_trial", "non_renewing", "cancelled"):
            raise param_wrong_value("status", f"unsupported seed status {status}")
        items = [self.item(item_price_id, 0, quantity, param="item_price_id")]
        with self._changes() as events:
            sub_id = id or new_id()
            if self.store.exists("subscription", sub_id):
                raise duplicate_entry("id", sub_id)
            customer = self.store.get("customer", customer_id) or self._new_customer(
                events, customer_id, {}, "admin_console"
            )
            trial_end = None
            if status == "in_trial":
                trial_end = self.store.now() + 86400 * self._price(item_price_id).get("trial_days", SEED_TRIAL_DAYS)
            sub = subscription_object(sub_id, customer_id, items, trial_end, self.store.now())
            if status in ("non_renewing", "cancelled"):
                apply_cancel(sub, status == "non_renewing", self.store.now())
            if meta_data is not None:
                sub["meta_data"] = meta_data
            self.store.put("subscription", self.store.touch(sub))
            self._record(events, "subscription_created", "admin_console", subscription=sub, customer=customer)
            return sub

    def cancel_subscription(self, sub_id: str, end_of_term: bool, source: str = "admin_console") -> Body:
        """Cancel now, or schedule it for the end of the term (status non_renewing)."""
        with self._changes() as events:
            sub = self._live_subscription(sub_id)
            if end_of_term and sub["status"] == "non_renewing":
                raise invalid_state(f"Subscription {sub_id} is already scheduled for cancellation")
            apply_cancel(sub, end_of_term, self.store.now())
            event_type = "subscription_cancellation_scheduled" if end_of_term else "subscription_cancelled"
            return self._save_change(events, sub, event_type, source)

    def change_seats(self, sub_id: str, quantity: int, source: str = "admin_console") -> Body:
        """Set the plan item's quantity, as a seat change made in the admin console (or `source`)."""
        if quantity < 1:
            raise param_wrong_value("quantity", "cannot be less than 1")
        with self._changes() as events:
            sub = self._live_subscription(sub_id)
            items = sub["subscription_items"]
            index = next((i for i, item in enumerate(items) if item["item_type"] == "plan"), 0)
            items[index] = priced(dict(items[index], quantity=quantity))
            return self._save_change(events, sub, "subscription_changed", source)

    def end_trial(self, sub_id: str) -> Body:
        """Move an in_trial subscription to active now, as Chargebee's scheduler does at trial end."""
        with self._changes() as events:
            sub = self.store.require("subscription", sub_id)
            if sub["status"] != "in_trial":
                raise invalid_state(f"Subscription {sub_id} is not in trial")
            now = self.store.now()
            sub.update(status="active", trial_end=now, activated_at=now)
            start_term(sub, now)
            return self._save_change(events, sub, "subscription_activated", "scheduled_job")

    def with_customer(self, sub: Body) -> Body:
        """The {subscription, customer} pair Chargebee answers subscription calls with."""
        return {"subscription": sub, "customer": self.store.require("customer", sub["customer_id"])}

    @contextmanager
    def _changes(self) -> Iterator[list[Body]]:
        """Run a change atomically, then tell on_event listeners, outside the lock, so a
        listener may call back into the fake (over HTTP or not) without deadlocking."""
        events: list[Body] = []
        with self.store.transaction():
            yield events
        with self._callbacks_lock:
            callbacks = list(self._callbacks)
        for event in events:
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:  # a broken listener must not fail the API call, as on Chargebee
                    logger.exception("on_event callback failed for %s", event["id"])

    def _record(self, events: list[Body], event_type: str, source: str, **content: Any) -> None:
        with self._callbacks_lock:
            webhook_status = "scheduled" if self._callbacks else "not_configured"
        event = {
            "id": new_id("ev_"),
            "occurred_at": self.store.now(),
            "source": source,
            "object": "event",
            "api_version": "v2",
            "event_type": event_type,
            "webhook_status": webhook_status,
            "content": content,
        }
        events.append(self.store.put("event", event))

    def _new_customer(self, events: list[Body], customer_id: str | None, fields: Body, source: str) -> Body:
        customer_id = customer_id or new_id()
        if self.store.exists("customer", customer_id):
            raise duplicate_entry("id", customer_id)
        customer = customer_object(customer_id, fields, self.store.now())
        self.store.put("customer", self.store.touch(customer))
        self._record(events, "customer_created", source, customer=customer)
        return customer

    def _price(self, item_price_id: str, param: str | None = None) -> Body:
        """The configured item price; unknown ids are refused only when prices were configured."""
        if self._item_prices is None:
            return {}
        if item_price_id not in self._item_prices:
            raise ChargebeeApiError(404, "resource_not_found", f"Item price {item_price_id} is not present", param)
        return self._item_prices[item_price_id]

    def _live_subscription(self, sub_id: str, param: str | None = None) -> Body:
        sub = self.store.require("subscription", sub_id, param)
        if sub["status"] == "cancelled":
            raise invalid_state(f"Subscription {sub_id} is cancelled")
        return sub

    def _save_change(self, events: list[Body], sub: Body, event_type: str, source: str) -> Body:
        self.store.put("subscription", self.store.touch(sub))
        self._record(events, event_type, source, **self.with_customer(sub))
        return sub

    def _fulfil_new_checkout(self, events: list[Body], checkout: Body) -> Body:
        """Create the subscription (and the customer, if new). The subscription id is checked again:
        another page or API call may have taken it since this page was opened."""
        sub_id = checkout.get("subscription_id") or new_id()
        if self.store.exists("subscription", sub_id):
            raise duplicate_entry("subscription[id]", sub_id)
        wanted = checkout.get("customer") or {}
        fields = {key: value for key, value in wanted.items() if key in CUSTOMER_FIELDS}
        customer = (wanted.get("id") and self.store.get("customer", wanted["id"])) or self._new_customer(
            events, wanted.get("id"), fields, "hosted_page"
        )
        customer = self.store.put("customer", self.store.touch(dict(customer, card_status="valid")))
        trial_end = checkout.get("trial_end")
        trial_days = self._price(checkout["items"][0]["item_price_id"]).get("trial_days")
        if trial_end is None and trial_days:
            trial_end = self.store.now() + trial_days * 86400
        sub = subscription_object(sub_id, customer["id"], checkout["items"], trial_end, self.store.now())
        sub["currency_code"] = self._price(checkout["items"][0]["item_price_id"]).get("currency_code", "USD")
        self.store.put("subscription", self.store.touch(sub))
        self._record(events, "subscription_created", "hosted_page", subscription=sub, customer=customer)
        content = {"subscription": sub, "customer": customer}
        if sub["status"] == "active":
            content["invoice"] = self._charge(events, sub, "hosted_page")
        return content

    def _fulfil_existing_checkout(self, events: list[Body], checkout: Body) -> Body:
        sub = self._live_subscription(checkout["subscription_id"])
        if checkout["items"]:
            sub["subscription_items"] = merge_items(sub["subscription_items"], checkout["items"], checkout["replace"])
        content = self.with_customer(self._save_change(events, sub, "subscription_changed", "hosted_page"))
        if sub["status"] == "active":
            content["invoice"] = self._charge(events, sub, "hosted_page")
        return content

    def _card_used(self, events: list[Body], customer_id: str, number: str) -> Body | None:
        """A card paid a checkout; FakeChargebee's payment-sources mixin keeps it as the customer's."""
        return None

    def _charge(self, events: list[Body], sub: Body, source: str) -> Body:
        """Bill the subscription's items now. Here only a receipt; FakeChargebee's invoicing
        mixin (sandbox/fake_chargebee_invoices.py) stores it and records its events."""
        return self.store.touch(paid_invoice(sub, self.store.now()))


# ----- object shapes ------------------------------------------------------------------------------


def customer_object(customer_id: str, fields: Body, now: int) -> Body:
    return {
        "id": customer_id,
        "auto_collection": "on",
        "net_term_days": 0,
        "allow_direct_debit": False,
        "created_at": now,
        "taxability": "taxable",
        "pii_cleared": "active",
        "deleted": False,
        "object": "customer",
        "card_status": "no_card",
        "promotional_credits": 0,
        "refundable_credits": 0,
        "excess_payments": 0,
        "unbilled_charges": 0,
        "preferred_currency_code": "USD",
        **{key: value for key, value in fields.items() if value != ""},
    }


def subscription_object(sub_id: str, customer_id: str, items: list[Body], trial_end: int | None, now: int) -> Body:
    """An in_trial subscription when trial_end is in the future, else an active one."""
    sub = {
        "id": sub_id,
        "customer_id": customer_id,
        "subscription_items": items,
        "billing_period": 1,
        "billing_period_unit": "month",
        "auto_collection": "on",
        "currency_code": "USD",
        "created_at": now,
        "started_at": now,
        "has_scheduled_changes": False,
        "due_invoices_count": 0,
        "deleted": False,
        "object": "subscription",
    }
    if trial_end is not None and trial_end > now:
        sub.update(status="in_trial", trial_start=now, trial_end=trial_end, next_billing_at=trial_end)
    else:
        sub.update(status="active", activated_at=now)
        start_term(sub, now)
    return sub


def subscription_item(item_price_id: str, item_type: str, quantity: int, unit_price: int) -> Body:
    item = {"item_price_id": item_price_id, "item_type": item_type, "quantity": quantity, "unit_price": unit_price}
    return priced({**item, "object": "subscription_item"})


def priced(item: Body) -> Body:
    item["amount"] = item["unit_price"] * item["quantity"]
    return item


def paid_invoice(sub: Body, now: int) -> Body:
    """The first invoice of a paid checkout: enough for a receipt or a "was it paid" check."""
    total = sum(item["amount"] for item in sub["subscription_items"])
    line_items = [
        {
            "id": new_id("li_"),
            "date_from": sub["current_term_start"],
            "date_to": sub["current_term_end"],
            "unit_amount": item["unit_price"],
            "quantity": item["quantity"],
            "amount": item["amount"],
            "entity_type": f"{item['item_type']}_item_price",
            "entity_id": item["item_price_id"],
            "subscription_id": sub["id"],
            "object": "line_item",
        }
        for item in sub["subscription_items"]
    ]
    return {
        "id": new_id("inv_"),
        "customer_id": sub["customer_id"],
        "subscription_id": sub["id"],
        "recurring": True,
        "status": "paid",
        "date": now,
        "total": total,
        "sub_total": total,
        "amount_paid": total,
        "amount_due": 0,
        "paid_at": now,
        "currency_code": sub.get("currency_code", "USD"),
        "line_items": line_items,
        "deleted": False,
        "object": "invoice",
    }


def credit_note(sub: Body, credit_option: str, schedule_refund: bool, now: int) -> Body:
    """The refundable credit note of an immediate cancellation: the current term in full, or the unused
    part of it (prorate); with ``schedule_refund`` the amount is refunded to the card, not kept as credit."""
    total = sum(item.get("amount", 0) for item in sub["subscription_items"])
    start, end = sub.get("current_term_start"), sub.get("current_term_end")
    if credit_option == "prorate" and start and end and end > start:
        total = total * max(0, end - now) // (end - start)
    return {
        "id": new_id("cn_"),
        "customer_id": sub["customer_id"],
        "subscription_id": sub["id"],
        "type": "refundable",
        "reason_code": "subscription_cancellation",
        "status": "refund_due" if schedule_refund else "adjusted",
        "total": total,
        "amount_refunded": 0,
        "currency_code": "USD",
        "date": now,
        "object": "credit_note",
    }


def merge_items(current: list[Body], changes: list[Body], replace: bool) -> list[Body]:
    """checkout_existing semantics: items are updated by item price id, a new plan replaces the
    old plan, other new items are added; `replace_items_list=true` replaces everything."""
    if replace:
        return changes
    merged = [dict(item) for item in current]
    for change in changes:
        same = next((i for i, item in enumerate(merged) if item["item_price_id"] == change["item_price_id"]), None)
        if same is not None:
            change = dict(change, item_type=merged[same]["item_type"])
        elif change["item_type"] == "plan":
            same = next((i for i, item in enumerate(merged) if item["item_type"] == "plan"), None)
        if same is None:
            merged.append(change)
        else:
            merged[same] = change
    return merged


def start_term(sub: Body, now: int) -> None:
    term_end = add_month(now)
    sub.update(current_term_start=now, current_term_end=term_end, next_billing_at=term_end)


def apply_cancel(sub: Body, end_of_term: bool, now: int) -> None:
    """A scheduled cancellation keeps access until the term (or trial) ends; an immediate one ends it now."""
    sub.pop("next_billing_at", None)
    if end_of_term:
        ends_at = sub.get("current_term_end") or sub["trial_end"]
        sub.update(status="non_renewing", cancelled_at=ends_at, cancel_schedule_created_at=now)
    else:
        sub.update(status="cancelled", cancelled_at=now)


def add_month(timestamp: int) -> int:
    """Same day next month (clamped to the month's length), as Chargebee bills monthly terms."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())
