"""Every call orgbilling makes to Chargebee goes through this module.

One small gateway keeps the SDK's quirks in one place (see VENDOR_NOTES):
``meta_data`` is sent as a JSON string so its keys keep their case, POSTs
carry an idempotency key so they can be retried safely, retries are bounded
(the SDK's own retry loops forever on 429), and every failure becomes one
``ChargebeeError``. Results are plain dicts (the API's JSON), not SDK objects.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import chargebee
import httpx
from chargebee.main import Chargebee

from . import chargebee_transport, conf

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = Chargebee.idempotency_header
RETRYABLE_STATUSES = {429, 500, 502, 503, 504}
PAGE_SIZE = 100  # Chargebee's maximum list page


class ChargebeeError(Exception):
    """A Chargebee call failed; ``api_error_code`` is Chargebee's code (or ours for network errors)."""

    def __init__(
        self,
        message: str,
        *,
        api_error_code: str = "",
        http_status: int | None = None,
        param: str = "",
        cause: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.api_error_code = api_error_code
        self.http_status = http_status
        self.param = param
        self.cause = cause  # Chargebee's error_cause_id (gateway.general.decline, ...), when it sends one

    @property
    def retryable(self) -> bool:
        return self.http_status is None or self.http_status in RETRYABLE_STATUSES

    def __str__(self) -> str:
        code = f" [{self.api_error_code}]" if self.api_error_code else ""
        return f"Chargebee: {self.message}{code}"

    @property
    def summary(self) -> str:
        """What logs may say: Chargebee's messages echo the ids they were given (hosted pages among them)."""
        return f"HTTP {self.http_status or '-'} {self.api_error_code or 'error'}" + (
            f" on {self.param}" if self.param else ""
        )


def customer_meta_data(organization_id: str, pending_subscription_id: str | None = None) -> dict[str, str]:
    """The whole customer meta_data object, always written from local data."""
    meta = {"organizationId": organization_id, "customerType": "organization"}
    if pending_subscription_id:
        meta["pendingSubscriptionId"] = pending_subscription_id
    return meta


def _translate(exc: Exception) -> ChargebeeError:
    if isinstance(exc, chargebee.APIError):
        return ChargebeeError(
            exc.json_obj.get("message") or str(exc),
            api_error_code=exc.api_error_code or exc.json_obj.get("error_code") or "",
            http_status=exc.http_status_code,
            param=exc.param or "",
            cause=str(exc.json_obj.get("error_cause_id") or ""),
        )
    if isinstance(exc, httpx.TimeoutException):
        return ChargebeeError("Chargebee did not answer in time", api_error_code="timeout")
    if isinstance(exc, httpx.TransportError):
        return ChargebeeError(f"Chargebee could not be reached ({exc})", api_error_code="network_error")
    # The SDK raises a bare Exception for non-JSON bodies (proxies, outages).
    text = str(exc)
    status = 503 if "503" in text else 504 if "504" in text else 500
    return ChargebeeError(
        "Chargebee answered with an unreadable error", api_error_code="internal_error", http_status=status
    )


class ChargebeeGateway:
    """A configured Chargebee client with bounded retries. Build one with ``get_gateway()``."""

    def __init__(
        self,
        *,
        api_key: str,
        site: str,
        base_url: str = "",
        connect_timeout: float = 5,
        read_timeout: float = 20,
        max_retries: int = 2,
        backoff: float = 0.5,
        sleep: Callable[[float], None] | None = None,
    ):
        chargebee_transport.install()
        self.client = chargebee.Chargebee(
            api_key=api_key,
            site=site or "local",
            connection_time_out=connect_timeout,
            read_time_out=read_timeout,
        )
        if base_url:
            if base_url.startswith("http://"):
                # The SDK forces https while this class attribute is True (process-global,
                # so it is only touched when a plain-HTTP base URL is configured).
                Chargebee.verify_ca_certs = False
                self.client.update_protocol("http")
            self.client.env.api_endpoint = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep or pause

    def _call(
        self, label: str, func: Callable[..., Any], *args: Any, post: bool = False, idempotency_key: str = ""
    ) -> Any:
        """Run one SDK call, retrying 429/5xx/timeouts at most ``max_retries`` times.

        A POST is retried only with the same idempotency key on every try, so
        Chargebee applies it once however many times it reaches them. A caller
        that recorded its own key (before a crash could lose the call) passes it.
        """
        kwargs = {"headers": {IDEMPOTENCY_HEADER: idempotency_key or uuid.uuid4().hex}} if post else {}
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001  every SDK failure becomes a ChargebeeError
                error = _translate(exc)
                if not error.retryable or attempt >= self.max_retries:
                    logger.warning("chargebee %s failed after %d tries: %s", label, attempt + 1, error.summary)
                    raise error from exc
                delay = self.backoff * (2**attempt)
                if error.http_status == 429:
                    delay = max(delay, _retry_after(exc))
                attempt += 1
                logger.info("chargebee %s: %s; retry %d in %.1fs", label, error.summary, attempt, delay)
                self.sleep(min(delay, 10.0))

    # -- customers ---------------------------------------------------------
    def create_customer(
        self, *, customer_id: str, company: str, meta_data: dict[str, str], idempotency_key: str = ""
    ) -> dict:
        params = {"id": customer_id, "company": company, "meta_data": json.dumps(meta_data)}
        create = self.client.Customer.create
        result = self._call("customer.create", create, params, post=True, idempotency_key=idempotency_key)
        return result.customer.raw_data

    def retrieve_customer(self, customer_id: str) -> dict:
        return self._call("customer.retrieve", self.client.Customer.retrieve, customer_id).customer.raw_data

    def update_customer(self, customer_id: str, *, company: str | None = None, meta_data: dict | None = None) -> dict:
        params: dict[str, str] = {}
        if company is not None:
            params["company"] = company
        if meta_data is not None:
            params["meta_data"] = json.dumps(meta_data)
        result = self._call("customer.update", self.client.Customer.update, customer_id, params, post=True)
        return result.customer.raw_data

    def update_billing_info(self, customer_id: str, *, billing_address: dict[str, str], vat_number: str) -> dict:
        """Set the customer's billing address and VAT number; Chargebee validates them (``param`` names the field)."""
        params = {"billing_address": billing_address, "vat_number": vat_number}
        method = self.client.Customer.update_billing_info
        return self._call("customer.update_billing_info", method, customer_id, params, post=True).customer.raw_data

    # -- subscriptions -----------------------------------------------------
    def list_subscriptions_page(
        self, *, customer_id: str | None = None, updated_after: int | None = None, offset: str | None = None
    ) -> tuple[list[dict], str | None]:
        """One page (up to 100) of ``{"subscription": ..., "customer": ...}`` entries and the next offset.

        ``updated_after`` (unix seconds) lists only subscriptions changed since then.
        """
        params = _list_params(customer_id, updated_after, offset)
        result = self._call("subscription.list", self.client.Subscription.list, params)
        entries = []
        for entry in result.list:
            item = {"subscription": entry.subscription.raw_data}
            if getattr(entry, "customer", None) is not None:
                item["customer"] = entry.customer.raw_data
            entries.append(item)
        return entries, result.next_offset

    def iter_subscriptions(self, *, customer_id: str | None = None, updated_after: int | None = None) -> Iterator[dict]:
        """Every subscription (optionally of one customer, or changed since), 100 per list call."""
        return _every_page(self.list_subscriptions_page, customer_id=customer_id, updated_after=updated_after)

    def retrieve_subscription(self, subscription_id: str) -> dict:
        """``{"subscription": ..., "customer": ...}`` as Chargebee has them now."""
        result = self._call("subscription.retrieve", self.client.Subscription.retrieve, subscription_id)
        return {"subscription": result.subscription.raw_data, "customer": result.customer.raw_data}

    def cancel_subscription_now(self, subscription_id: str, *, refund: bool = False) -> dict:
        """Cancel at once, idempotently: one already cancelled is returned as it is.

        ``refund`` credits the current term's charges in full and schedules
        the refund of that credit to the payer. A try that timed out may still
        have gone through at Chargebee; the retry then gets
        ``invalid_state_for_request`` for what is in fact done.
        """
        params: dict[str, Any] = {"end_of_term": False}
        if refund:
            params.update(credit_option_for_current_term_charges="full", refundable_credits_handling="schedule_refund")
        try:
            result = self._call(
                "subscription.cancel", self.client.Subscription.cancel_for_items, subscription_id, params, post=True
            )
        except ChargebeeError as exc:
            if exc.api_error_code != "invalid_state_for_request":
                raise
            current = self._call("subscription.retrieve", self.client.Subscription.retrieve, subscription_id)
            if current.subscription.raw_data.get("status") != "cancelled":
                raise
            return current.subscription.raw_data
        return result.subscription.raw_data

    def cancel_at_term_end(self, subscription_id: str) -> dict:
        """Schedule the cancellation for the end of the current term (status ``non_renewing``, ``cancelled_at``
        the term end); ``{"subscription", "customer"}``. Chargebee refuses one already scheduled
        (``invalid_state_for_request``)."""
        params = {"end_of_term": True}
        method = self.client.Subscription.cancel_for_items
        result = self._call("subscription.cancel_at_term_end", method, subscription_id, params, post=True)
        return {"subscription": result.subscription.raw_data, "customer": result.customer.raw_data}

    def remove_scheduled_cancellation(self, subscription_id: str) -> dict:
        """Keep a subscription that was to cancel at its term end; ``{"subscription", "customer"}``."""
        method = self.client.Subscription.remove_scheduled_cancellation
        result = self._call("subscription.remove_scheduled_cancellation", method, subscription_id, {}, post=True)
        return {"subscription": result.subscription.raw_data, "customer": result.customer.raw_data}

    def renewal_estimate(self, subscription_id: str) -> dict:
        """What Chargebee will charge when the subscription next bills: the ``estimate`` object
        (``invoice_estimate`` with ``amount_due``, ``line_items``...). Refused for a cancelled subscription."""
        method = self.client.Estimate.renewal_estimate
        return self._call("estimate.renewal_estimate", method, subscription_id, {}).estimate.raw_data

    # -- previewed changes (orgbilling.changes) -------------------------------
    def estimate_update_for_items(self, subscription_id: str, params: dict[str, Any]) -> dict:
        """What ``update_for_items`` with exactly ``params`` would charge, credit and renew at (changes nothing).

        ``params`` come from ``change_params``; the ``estimate`` object is returned
        (``invoice_estimate``, ``credit_note_estimates``, ``next_invoice_estimate``, ``subscription_estimate``).
        """
        method = self.client.Estimate.update_subscription_for_items
        body = {**params, "subscription": {"id": subscription_id}}
        return self._call("estimate.update_subscription_for_items", method, body).estimate.raw_data

    def update_for_items(self, subscription_id: str, params: dict[str, Any], *, idempotency_key: str) -> dict:
        """Apply a change previewed with the same ``params``; the key makes a repeated confirm change it once.

        Returns ``{"subscription", "customer", "invoice"?, "credit_notes"?}`` as plain dicts.
        """
        method = self.client.Subscription.update_for_items
        result = self._call(
            "subscription.update_for_items", method, subscription_id, params, post=True, idempotency_key=idempotency_key
        )
        answer = {"subscription": result.subscription.raw_data, "customer": result.customer.raw_data}
        if getattr(result, "invoice", None) is not None:
            answer["invoice"] = result.invoice.raw_data
        if getattr(result, "credit_notes", None):
            answer["credit_notes"] = [note.raw_data for note in result.credit_notes]
        return answer

    def remove_scheduled_changes(self, subscription_id: str) -> dict:
        """Undo the changes waiting for term end; ``{"subscription", "customer"}``."""
        method = self.client.Subscription.remove_scheduled_changes
        result = self._call("subscription.remove_scheduled_changes", method, subscription_id, post=True)
        return {"subscription": result.subscription.raw_data, "customer": result.customer.raw_data}

    # -- invoices ------------------------------------------------------------
    def list_invoices_page(
        self, *, customer_id: str | None = None, updated_after: int | None = None, offset: str | None = None
    ) -> tuple[list[dict], str | None]:
        """One page (up to 100) of invoices, deleted ones included (so the mirror drops them too)."""
        params = _list_params(customer_id, updated_after, offset, include_deleted=True)
        result = self._call("invoice.list", self.client.Invoice.list, params)
        return [entry.invoice.raw_data for entry in result.list], result.next_offset

    def iter_invoices(self, *, updated_after: int | None = None, customer_id: str | None = None) -> Iterator[dict]:
        """Every invoice (optionally only those updated after a unix time, or one customer's), 100 per call."""
        return _every_page(self.list_invoices_page, updated_after=updated_after, customer_id=customer_id)

    def invoice_pdf(self, invoice_id: str) -> dict:
        """A fresh download link: ``{"download_url", "valid_till"}``. Secret: never store or log it."""
        return self._call("invoice.pdf", self.client.Invoice.pdf, invoice_id, {}, post=True).download.raw_data

    # -- payment sources -------------------------------------------------------
    def list_payment_sources_page(
        self, *, customer_id: str | None = None, updated_after: int | None = None, offset: str | None = None
    ) -> tuple[list[dict], str | None]:
        """One page (up to 100) of payment sources of every customer (or one)."""
        params = _list_params(customer_id, updated_after, offset)
        result = self._call("payment_source.list", self.client.PaymentSource.list, params)
        return [entry.payment_source.raw_data for entry in result.list], result.next_offset

    def iter_payment_sources(
        self, *, updated_after: int | None = None, customer_id: str | None = None
    ) -> Iterator[dict]:
        return _every_page(self.list_payment_sources_page, updated_after=updated_after, customer_id=customer_id)

    def manage_payment_sources(self, *, customer_id: str, redirect_url: str) -> dict:
        """A hosted page where the customer replaces the card (its ``url`` is used at once, never stored)."""
        params = {"customer": {"id": customer_id}, "redirect_url": redirect_url}
        method = self.client.HostedPage.manage_payment_sources
        return self._call("hosted_page.manage_payment_sources", method, params, post=True).hosted_page.raw_data

    # -- item prices (the plan catalog) -------------------------------------------
    def list_item_prices_page(
        self, *, updated_after: int | None = None, offset: str | None = None
    ) -> tuple[list[dict], str | None]:
        """One page (up to 100) of plan item prices, active and archived."""
        params = _list_params(None, updated_after, offset, **{"item_type[is]": "plan"})
        result = self._call("item_price.list", self.client.ItemPrice.list, params)
        return [entry.item_price.raw_data for entry in result.list], result.next_offset

    def iter_item_prices(self, *, updated_after: int | None = None) -> Iterator[dict]:
        """Every plan item price (or those updated after a unix time), 100 per list call."""
        return _every_page(self.list_item_prices_page, updated_after=updated_after)

    def retrieve_item_price(self, item_price_id: str) -> dict:
        return self._call("item_price.retrieve", self.client.ItemPrice.retrieve, item_price_id).item_price.raw_data

    # -- events --------------------------------------------------------------
    def retrieve_event(self, event_id: str) -> dict:
        """The event as Chargebee stores it (the envelope and its ``content`` as plain dicts)."""
        return self._call("event.retrieve", self.client.Event.retrieve, event_id).event.raw_data

    # -- webhook endpoints (orgbilling_health) --------------------------------
    def list_webhook_endpoints(self) -> list[dict]:
        """Every webhook endpoint configured on the site (at most 5 today; paged all the same)."""
        endpoints, offset = [], None
        while True:
            params: dict[str, Any] = {"limit": PAGE_SIZE, **({"offset": offset} if offset else {})}
            result = self._call("webhook_endpoint.list", self.client.WebhookEndpoint.list, params)
            endpoints += [entry.webhook_endpoint.raw_data for entry in result.list]
            offset = result.next_offset
            if not offset:
                return endpoints

    # -- hosted pages and portal -------------------------------------------
    def checkout_new_for_items(
        self,
        *,
        customer_id: str,
        subscription_id: str,
        item_price_id: str,
        quantity: int,
        redirect_url: str,
        cancel_url: str,
        trial_end: int | None = None,
        gateway_account_id: str = "",
    ) -> dict:
        """A hosted checkout page creating subscription ``subscription_id``; ``trial_end`` 0 means no trial."""
        subscription: dict[str, Any] = {"id": subscription_id}
        if trial_end is not None:
            subscription["trial_end"] = trial_end
        params = _page_params(subscription, item_price_id, quantity, redirect_url, cancel_url, gateway_account_id)
        params["customer"] = {"id": customer_id}
        method = self.client.HostedPage.checkout_new_for_items
        return self._call("hosted_page.checkout_new", method, params, post=True).hosted_page.raw_data

    def checkout_existing_for_items(
        self,
        *,
        subscription_id: str,
        item_price_id: str,
        quantity: int,
        redirect_url: str,
        cancel_url: str,
        gateway_account_id: str = "",
    ) -> dict:
        """A hosted page changing the plan (it replaces the current plan item) or seats of a subscription."""
        subscription = {"id": subscription_id}
        params = _page_params(subscription, item_price_id, quantity, redirect_url, cancel_url, gateway_account_id)
        method = self.client.HostedPage.checkout_existing_for_items
        return self._call("hosted_page.checkout_existing", method, params, post=True).hosted_page.raw_data

    def retrieve_hosted_page(self, page_id: str) -> dict:
        return self._call("hosted_page.retrieve", self.client.HostedPage.retrieve, page_id).hosted_page.raw_data

    def acknowledge_hosted_page(self, page_id: str) -> dict:
        result = self._call("hosted_page.acknowledge", self.client.HostedPage.acknowledge, page_id, post=True)
        return result.hosted_page.raw_data

    def collect_now(self, *, customer_id: str, redirect_url: str) -> dict:
        """A hosted page where the customer pays every due invoice (its ``url`` is used at once, never stored)."""
        params = {"customer": {"id": customer_id}, "redirect_url": redirect_url}
        return self._call(
            "hosted_page.collect_now", self.client.HostedPage.collect_now, params, post=True
        ).hosted_page.raw_data

    def create_portal_session(self, *, customer_id: str, redirect_url: str) -> dict:
        """A single-use portal session; its ``access_url`` must be used at once, never stored."""
        params = {"customer": {"id": customer_id}, "redirect_url": redirect_url}
        result = self._call("portal_session.create", self.client.PortalSession.create, params, post=True)
        return result.portal_session.raw_data


def change_params(*, item_price_id: str, quantity: int, increase: bool) -> dict[str, Any]:
    """The parameters of a plan or seat change, the same for its estimate and for applying it.

    An increase is prorated and invoiced now; a decrease or downgrade waits for the term's end.
    The plan item replaces the current one (Chargebee swaps the plan item of a subscription).
    """
    params: dict[str, Any] = {"subscription_items": [{"item_price_id": item_price_id, "quantity": quantity}]}
    if increase:
        params.update(prorate=True, invoice_immediately=True, end_of_term=False)
    else:
        params.update(end_of_term=True)
    return params


def _page_params(
    subscription: dict[str, Any],
    item_price_id: str,
    quantity: int,
    redirect_url: str,
    cancel_url: str,
    gateway_account_id: str,
) -> dict[str, Any]:
    """What both checkout pages send: one plan item, where to come back, and the gateway when one is set."""
    params: dict[str, Any] = {
        "subscription": subscription,
        "subscription_items": [{"item_price_id": item_price_id, "quantity": quantity}],
        "redirect_url": redirect_url,
        "cancel_url": cancel_url,
    }
    if gateway_account_id:
        params["card"] = {"gateway_account_id": gateway_account_id}
    return params


def _list_params(customer_id: str | None, updated_after: int | None, offset: str | None, **extra: Any) -> dict:
    """A list call's parameters: 100 a page, and only the filters that are set."""
    params: dict[str, Any] = {"limit": PAGE_SIZE, **extra}
    if customer_id:
        params["customer_id[is]"] = customer_id
    if updated_after is not None:
        params["updated_at[after]"] = updated_after
    if offset:
        params["offset"] = offset
    return params


def _every_page(fetch: Callable[..., tuple[list[dict], str | None]], **filters: Any) -> Iterator[dict]:
    """Every entry of a list call, following ``next_offset`` page by page."""
    offset = None
    while True:
        entries, offset = fetch(offset=offset, **filters)
        yield from entries
        if not offset:
            return


def _retry_after(exc: Exception) -> float:
    headers = getattr(exc, "http_headers", None) or {}
    try:
        return float(headers.get("retry-after") or headers.get("Retry-After") or 0)
    except ValueError:
        return 0.0


def pause(seconds: float) -> None:
    """How the gateway waits between retries, unless given a sleeper (tests replace this: no real waits)."""
    time.sleep(seconds)


def get_gateway() -> ChargebeeGateway:
    """A gateway built from the current settings (cheap: the SDK client opens no connection)."""
    return ChargebeeGateway(
        api_key=conf.get("CHARGEBEE_API_KEY"),
        site=conf.get("CHARGEBEE_SITE"),
        base_url=conf.get("CHARGEBEE_API_BASE_URL"),
        connect_timeout=conf.get("CHARGEBEE_CONNECT_TIMEOUT"),
        read_timeout=conf.get("CHARGEBEE_READ_TIMEOUT"),
        max_retries=conf.get("CHARGEBEE_MAX_RETRIES"),
        backoff=conf.get("CHARGEBEE_RETRY_BACKOFF"),
    )
