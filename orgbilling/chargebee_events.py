"""Chargebee webhook events: validate the envelope, then map each event type to a sync step.

Chargebee events carry whole resources (``content.subscription`` with
``content.customer``), so every subscription event goes through the one
``apply_subscription``; which event it was only matters for a deletion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import conf
from .billing_details import apply_customer_details
from .chargebee_gateway import ChargebeeError, get_gateway
from .chargebee_snapshot import InvalidSnapshot, SubscriptionSnapshot
from .customer_sync import Removal, customer_changed, remove_customer
from .deleted_org_cancellation import cancel_with_refund
from .deliveries import Ignored, NeedsVendorCall, may_call_vendor
from .event_envelope import decode, envelope, storable
from .invoices import InvoiceSnapshot, apply_invoice
from .payment_sources import apply_card_event, apply_customer_payment, apply_payment_source, read_source
from .prices import ItemPriceSnapshot, apply_item_price
from .subscription_sync import apply_subscription

MAX_ID_LENGTH = 50  # Chargebee's resource ids (event ids may be longer: the log keeps 255)

SUBSCRIPTION_EVENTS = (
    "subscription_created",
    "subscription_activated",
    "subscription_started",
    "subscription_changed",
    "subscription_renewed",
    "subscription_reactivated",
    "subscription_paused",
    "subscription_resumed",
    "subscription_cancellation_scheduled",
    "subscription_scheduled_cancellation_removed",
    "subscription_changes_scheduled",
    "subscription_scheduled_changes_removed",
    "subscription_cancelled",
    "subscription_deleted",
)
CUSTOMER_EVENTS = ("customer_changed", "customer_deleted")
# Each carries content.invoice (the payment ones also the subscription, with its dues).
INVOICE_EVENTS = (
    "invoice_generated",
    "invoice_updated",
    "invoice_deleted",
    "payment_succeeded",
    "payment_failed",
    "payment_refunded",
)
PAYMENT_SOURCE_EVENTS = (
    "payment_source_added",
    "payment_source_updated",
    "payment_source_deleted",
    "payment_source_expiring",
    "payment_source_expired",
)
CARD_EVENTS = ("card_expiry_reminder", "card_expired")  # the legacy card object, and the customer
ITEM_PRICE_EVENTS = ("item_price_created", "item_price_updated", "item_price_deleted")  # content.item_price
NEEDED_RESOURCE = {
    **dict.fromkeys(PAYMENT_SOURCE_EVENTS, "payment_source"),
    **dict.fromkeys(CARD_EVENTS, "card"),
    **dict.fromkeys(SUBSCRIPTION_EVENTS, "subscription"),
    **dict.fromkeys(CUSTOMER_EVENTS, "customer"),
    **dict.fromkeys(INVOICE_EVENTS, "invoice"),
    **dict.fromkeys(ITEM_PRICE_EVENTS, "item_price"),
}
READERS = {
    "subscription": SubscriptionSnapshot.read,
    "invoice": InvoiceSnapshot.read,
    "payment_source": read_source,
    "item_price": ItemPriceSnapshot.read,
}
ID_LENGTHS = {"content.item_price": 100}  # item price ids are longer than other Chargebee ids
# Every event type orgbilling acts on: a Chargebee endpoint must send these (orgbilling_health checks it).
HANDLED_EVENTS = tuple(NEEDED_RESOURCE) + ("dunning_updated",)


class MalformedEvent(ValueError):
    """The body is not a Chargebee event orgbilling can record."""


def parse_event(body: bytes) -> dict:
    """Decode and check a delivery body; raise ``MalformedEvent`` with a short reason."""
    return validate_event(decode(body, MalformedEvent))


def _check_resource(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise MalformedEvent(f"{where} is not an object")
    resource_id, length = value.get("id"), ID_LENGTHS.get(where, MAX_ID_LENGTH)
    if not storable(resource_id, length) or not resource_id.strip():
        raise MalformedEvent(f"{where}.id is missing or not a string of at most {length} characters")
    reader = READERS.get(where.removeprefix("content.").removesuffix("s[]"))
    if reader is not None:
        # Read the whole snapshot now: a value orgbilling cannot store is a 400 here, not a failed delivery later.
        try:
            reader(value)
        except InvalidSnapshot as exc:
            raise MalformedEvent(f"{where}: {exc}") from None


def validate_event(event: Any) -> dict:
    """Check an event's envelope and the resources it carries (also used on a strict-mode re-read)."""
    event = envelope(event, ("id", "event_type"), MalformedEvent)
    content = event.get("content")
    if not isinstance(content, dict):
        raise MalformedEvent("event content is missing or not an object")
    for name in ("subscription", "customer", "invoice", "payment_source", "item_price"):
        if name in content:
            _check_resource(content[name], f"content.{name}")
    if "subscriptions" in content:
        if not isinstance(content["subscriptions"], list):
            raise MalformedEvent("content.subscriptions is not a list")
        for subscription in content["subscriptions"]:
            _check_resource(subscription, "content.subscriptions[]")
    needed = NEEDED_RESOURCE.get(event["event_type"])
    if event["event_type"] in CARD_EVENTS and not isinstance(content.get("customer"), dict):
        raise MalformedEvent(f"{event['event_type']} event without content.customer")
    if needed is not None and needed not in content:
        raise MalformedEvent(f"{event['event_type']} event without content.{needed}")
    return event


def _unknown_customer(customer_id: str | None) -> Ignored:
    return Ignored(f"unknown customer: no organization uses Chargebee customer {customer_id}")


def _apply(content: dict, event_type: str) -> None:
    subscription = content["subscription"]
    result = apply_subscription(subscription, content.get("customer"), event_type=event_type)
    if result.subscription is None:
        raise _unknown_customer(subscription.get("customer_id"))
    if result.cancel_pending:
        if not may_call_vendor():
            # Applied inside the caller's transaction (local_deliveries): the call must wait for a commit.
            raise NeedsVendorCall(f"subscription {subscription['id']} of a deleted organization is cancelled")
        # Its organization is deleted: cancel with a refund now that the intent is committed (handlers run
        # outside any transaction). A failure fails the delivery; until Chargebee reports the subscription
        # cancelled even a stale copy of the event gets here, so the retry tries again.
        cancel_with_refund(result.subscription.pk)
        return
    if not result.applied:
        raise Ignored(f"stale: subscription {subscription['id']} already has a snapshot at least as new")


def _customer_changed(content: dict, event_type: str) -> None:
    customer = content["customer"]
    if customer_changed(customer) is None:
        raise _unknown_customer(customer["id"])
    apply_customer_payment(customer)
    apply_customer_details(customer)


def _customer_too(content: dict) -> None:
    """The customer object an event carries beside its resource: its details and card_status (ordering guard)."""
    if isinstance(content.get("customer"), dict) and content["customer"].get("id"):
        apply_customer_details(content["customer"])


def _payment_source(content: dict, event_type: str) -> None:
    source = content["payment_source"]
    _customer_too(content)
    result = apply_payment_source(source, content.get("customer"), event_type=event_type)
    if result.profile is None:
        raise _unknown_customer(source.get("customer_id"))
    if not result.applied:
        raise Ignored(f"{result.reason}: payment source {source['id']}")


def _card(content: dict, event_type: str) -> None:
    customer = content["customer"]
    _customer_too(content)
    result = apply_card_event(content["card"] if isinstance(content["card"], dict) else {}, customer, event_type)
    if result.profile is None:
        raise _unknown_customer(customer.get("id"))
    if not result.applied:
        raise Ignored("the card on file is not that card, or already has that status")


def _customer_deleted(content: dict, event_type: str) -> None:
    customer = content["customer"]
    removal = remove_customer(customer, content.get("subscriptions") or [])
    if removal == Removal.UNKNOWN:
        raise _unknown_customer(customer["id"])
    if removal == Removal.STALE:
        raise Ignored(f"stale: customer {customer['id']} was made again since this event (a newer resource_version)")


def _invoice(content: dict, event_type: str) -> None:
    """Apply the invoice, and the subscription a payment event carries (its dues changed with it)."""
    invoice = content["invoice"]
    _customer_too(content)
    result = apply_invoice(invoice, content.get("customer"), event_type=event_type)
    if result.invoice is None:
        raise _unknown_customer(invoice.get("customer_id"))
    subscription_applied = False
    if isinstance(content.get("subscription"), dict):
        subscription_applied = apply_subscription(content["subscription"], content.get("customer")).applied
    if not result.applied and not subscription_applied:
        raise Ignored(f"stale: invoice {invoice['id']} already has a snapshot at least as new")


def _dunning(content: dict, event_type: str) -> None:
    """``dunning_updated``: the invoice's retries and the subscription's dues, whichever it carries."""
    applied = False
    _customer_too(content)
    if isinstance(content.get("invoice"), dict):
        applied = apply_invoice(content["invoice"], content.get("customer"), event_type=event_type).applied
    if isinstance(content.get("subscription"), dict):
        applied = apply_subscription(content["subscription"], content.get("customer")).applied or applied
    if not applied:
        raise Ignored("nothing newer to apply (unknown customer, or stale)")


def _item_price(content: dict, event_type: str) -> None:
    """A price of the catalog changed in Chargebee: mirror it (no customer involved)."""
    item_price = content["item_price"]
    result = apply_item_price(item_price, event_type=event_type)
    if not result.applied:
        raise Ignored(f"{result.reason}: item price {item_price['id']}")


EVENT_HANDLERS: dict[str, Callable[[dict, str], None]] = {
    "dunning_updated": _dunning,
    **dict.fromkeys(PAYMENT_SOURCE_EVENTS, _payment_source),
    **dict.fromkeys(CARD_EVENTS, _card),
    **dict.fromkeys(SUBSCRIPTION_EVENTS, _apply),
    **dict.fromkeys(INVOICE_EVENTS, _invoice),
    **dict.fromkeys(ITEM_PRICE_EVENTS, _item_price),
    "customer_changed": _customer_changed,
    "customer_deleted": _customer_deleted,
}


def _confirmed(event: dict) -> dict:
    """Strict mode: the event as Chargebee itself has it, so a forged body changes nothing."""
    try:
        stored = get_gateway().retrieve_event(event["id"])
    except ChargebeeError as exc:
        if exc.api_error_code == "resource_not_found":
            raise Ignored(f"strict mode: Chargebee has no event {event['id']}") from None
        raise
    try:
        stored = validate_event(stored)
    except MalformedEvent as exc:
        raise Ignored(f"strict mode: Chargebee's copy of the event is unusable ({exc})") from None
    if stored["id"] != event["id"] or stored["event_type"] != event["event_type"]:
        raise Ignored(f"strict mode: Chargebee's event {event['id']} is not the one delivered")
    return stored


def calls_no_vendor(event_type: str) -> bool:
    """Whether handling this event only writes local rows (no Chargebee call), so it may run inside the
    transaction that records it (``local_deliveries``). Strict mode reads the event back from Chargebee; a
    subscription of a deleted organization, found only while applying, raises ``NeedsVendorCall`` there."""
    return event_type in SUBSCRIPTION_EVENTS and not conf.get("ORGBILLING_CHARGEBEE_STRICT_WEBHOOKS")


def handle_event(event: dict) -> None:
    """Apply one recorded Chargebee event (called by ``deliveries.process_delivery``)."""
    handler = EVENT_HANDLERS.get(event["event_type"])
    if handler is None:
        raise Ignored(f"event type {event['event_type']} is not used by orgbilling")
    if conf.get("ORGBILLING_CHARGEBEE_STRICT_WEBHOOKS"):
        event = _confirmed(event)
    handler(event["content"], event["event_type"])
