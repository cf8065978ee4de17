"""The sandbox's process-wide objects, built from settings on first use.

One fake Chargebee, one Scalekit directory, one token issuer and one webhook
sender per process: runserver's threads share them, and their state is in
sqlite files under ``SANDBOX_DIR``, so the demo's setup command (another
process) and the server see the same organizations, customers and keys.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings

from sandbox import outbound
from sandbox.demo_prices import DEMO_PRICES
from sandbox.fake_chargebee import FakeChargebee
from sandbox.scalekit_directory import Directory
from sandbox.scalekit_faults import Faults
from sandbox.scalekit_tokens import Issuer
from sandbox.settings_overlay import SIGNING_KEY_FILE
from sandbox.webhook_sender import Knobs, WebhookSender

T = TypeVar("T")
PLAN_PRICE_CENTS = 1500  # per seat and month, for every plan the sandbox sells

_lock = threading.RLock()  # re-entrant: building the fake Chargebee seeds its prices, whose webhooks need the sender
_objects: dict[str, Any] = {}


def _once(name: str, build: Callable[[], T]) -> T:
    with _lock:
        if name not in _objects:
            _objects[name] = build()
        return _objects[name]


def sandbox_dir() -> Path:
    return Path(settings.SANDBOX_DIR)


def sender() -> WebhookSender:
    def build() -> WebhookSender:
        knobs = Knobs(
            delay=getattr(settings, "SANDBOX_WEBHOOK_DELAY", 1.0),
            duplicate=getattr(settings, "SANDBOX_WEBHOOK_DUPLICATE", False),
            out_of_order=getattr(settings, "SANDBOX_WEBHOOK_OUT_OF_ORDER", False),
            drop_scalekit=getattr(settings, "SANDBOX_WEBHOOK_DROP_SCALEKIT", False),
        )
        return WebhookSender(knobs)

    return _once("sender", build)


def chargebee() -> FakeChargebee:
    """The fake Chargebee; each event it records is sent to the app as a webhook."""

    def build() -> FakeChargebee:
        plan_ids = [plan["id"] for plan in getattr(settings, "ORGBILLING_PLANS", None) or []]
        plan_ids.append(settings.CHARGEBEE_PLAN_ITEM_PRICE_ID)
        # Ids a project configures beyond the demo's catalog are sold at one price per seat and month.
        prices = {plan_id: {"price": PLAN_PRICE_CENTS, "item_type": "plan"} for plan_id in plan_ids if plan_id}
        fake = FakeChargebee(str(sandbox_dir() / "chargebee.sqlite3"), settings.CHARGEBEE_API_KEY, prices)
        fake.on_event(lambda event: sender().send(outbound.chargebee_delivery(event)))
        # Seeded quietly (a site set up before the app): sandbox_demo_setup mirrors them with orgbilling_sync --prices.
        fake.seed_item_prices(DEMO_PRICES, record=False)
        if not fake.store.find("webhook_endpoint", []):  # the sandbox sends to the app: say so, as Chargebee would
            fake.add_webhook_endpoint(settings.SANDBOX_WEBHOOK_URLS["chargebee"])
        return fake

    return _once("chargebee", build)


def directory() -> Directory:
    return _once("directory", lambda: Directory(str(sandbox_dir() / "scalekit.sqlite3")))


def scalekit_faults() -> Faults:
    """Faults injected into the fake Scalekit's management API."""
    return _once("scalekit_faults", Faults)


def issuer() -> Issuer:
    return _once(
        "issuer",
        lambda: Issuer.from_pem(
            (sandbox_dir() / SIGNING_KEY_FILE).read_bytes(), settings.SCALEKIT_ENV_URL, settings.SCALEKIT_CLIENT_ID
        ),
    )


def reset() -> None:
    """Forget every object (tests that change settings); pending webhooks are dropped."""
    with _lock:
        if "sender" in _objects:
            _objects["sender"].close()
        _objects.clear()
