"""A fake of Chargebee's HTTP API (v2, Product Catalog 2.0) that the real chargebee SDK talks to.

Why a live server rather than request mocks: the SDK opens a fresh httpx client per call, so a
mock has to sit under it and skips its form encoding, error mapping and timeouts. This WSGI app
speaks the same wire format instead - bracketed form keys in, Chargebee-shaped JSON out - and
lets tests inject faults (429, 5xx, slow answers) per request. What customers and Chargebee's
scheduler do (pay on a hosted page, cancel, end a trial) are plain methods inherited from
`ChargebeeState`, so tests and the demo sandbox drive the other side of the API directly.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sandbox import (
    fake_chargebee_changes,
    fake_chargebee_customers,
    fake_chargebee_invoices,
    fake_chargebee_payment_sources,
    fake_chargebee_prices,
    fake_chargebee_renewals,
)
from sandbox.fake_chargebee_changes import ChangesMixin
from sandbox.fake_chargebee_customers import CustomersMixin
from sandbox.fake_chargebee_invoices import InvoicingMixin
from sandbox.fake_chargebee_payment_sources import PaymentSourcesMixin
from sandbox.fake_chargebee_prices import PricesMixin
from sandbox.fake_chargebee_renewals import RenewalsMixin
from sandbox.fake_chargebee_store import (
    CUSTOMER_FIELDS,
    Body,
    CardDeclined,
    ChargebeeApiError,
    ChargebeeState,
    Filter,
    credit_note,
    param_required,
    param_wrong_value,
)

__all__ = ["Call", "CardDeclined", "ChargebeeApiError", "FakeChargebee", "RunningServer", "serve"]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v2"
Answer = tuple[int, Body, list[tuple[str, str]]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Call:
    """One HTTP request as the fake saw it; `path` is relative to /api/v2."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    faulted: bool = False


@dataclass
class _Fault:
    passes: int  # matching requests still to let through before failing
    remaining: int
    status: int
    path: str | None
    method: str | None
    timeout_seconds: float | None


@dataclass
class _Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    api_key: str
    site_url: str  # scheme://host plus whatever the app is mounted under, before /api/v2


class FakeChargebee(
    ChangesMixin, PricesMixin, InvoicingMixin, PaymentSourcesMixin, CustomersMixin, RenewalsMixin, ChargebeeState
):
    """A WSGI app serving Chargebee's API under any path prefix ending in /api/v2.

    `api_key=None` accepts any non-empty key. The request log (`calls`) and fault injection
    (`fail_next`) live in memory; objects live in sqlite at `path`.
    """

    def __init__(
        self,
        path: str = ":memory:",
        api_key: str | None = None,
        item_prices: dict[str, Body] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(path, item_prices, clock)
        self._api_key = api_key
        self._log_lock = threading.Lock()  # guards the three collections below
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._replies: dict[str, Body] = {}
        self._key_locks: dict[str, threading.Lock] = {}  # one per idempotency key: a repeat waits for the first
        self._stopping = threading.Event()  # set by close(): requests held by a timeout fault answer now

    def calls(self, method: str | None = None, path: str | None = None) -> list[Call]:
        """Logged requests; `path` is exact, or a prefix when it ends with '*'."""
        with self._log_lock:
            return [call for call in self._calls if _matches(method, path, call.method, call.path)]

    def reset_calls(self) -> None:
        with self._log_lock:
            self._calls.clear()

    def fail_next(
        self,
        count: int,
        status: int = 503,
        path: str | None = None,
        method: str | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        """Make the next `count` matching requests fail with `status` (429 says Retry-After: 1),
        or, given `timeout_seconds`, answer normally but only after sleeping that long."""
        self.fail_after(0, count, status, path, method, timeout_seconds)

    def fail_after(
        self,
        passes: int,
        count: int,
        status: int = 503,
        path: str | None = None,
        method: str | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        """Like fail_next, but let `passes` matching requests through first (a failure midway)."""
        if count < 1 or passes < 0:
            raise ValueError("count must be at least 1 and passes at least 0")
        with self._log_lock:
            self._faults.append(_Fault(passes, count, status, path, method, timeout_seconds))

    def close(self) -> None:
        """Answer the requests a timeout fault is holding now (their clients have long given up)."""
        self._stopping.set()

    def clear_faults(self) -> None:
        with self._log_lock:
            self._faults.clear()

    # ----- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = _parse_request(environ)
        fault = self._take_fault(request) if request else None
        if fault and fault.timeout_seconds is not None:
            self._stopping.wait(fault.timeout_seconds)  # answered late, or at once when the server stops
            fault = None
        status, body, headers = self._answer(request, fault)
        payload = json.dumps(body).encode()
        headers += [("Content-Type", "application/json;charset=utf-8"), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [payload]

    def _take_fault(self, request: _Request) -> _Fault | None:
        """Consume the first matching fault, and log the request either way."""
        with self._log_lock:
            fault = next((f for f in self._faults if _matches(f.method, f.path, request.method, request.path)), None)
            if fault and fault.passes > 0:
                fault.passes -= 1
                fault = None
            elif fault:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            call = Call(request.method, request.path, request.params, request.headers, fault is not None)
            self._calls.append(call)
        return fault

    def _answer(self, request: _Request | None, fault: _Fault | None) -> Answer:
        if fault:
            error = _fault_error(fault.status)
            return error.status, error.body(), [("Retry-After", "1")] if fault.status == 429 else []
        try:
            if request is None:
                raise ChargebeeApiError(404, "resource_not_found", "Not an /api/v2 path")
            if not request.api_key or (self._api_key is not None and request.api_key != self._api_key):
                raise ChargebeeApiError(
                    401, "api_authentication_failed", "Sorry, authentication failed. Invalid api key", None, None
                )
            return self._answer_idempotently(request)
        except ChargebeeApiError as error:
            return error.status, error.body(), []
        except Exception as error:  # a bug in the fake: answer as Chargebee would, but say what broke
            logger.exception("fake chargebee failed")
            failure = ChargebeeApiError(500, "internal_error", repr(error), None, "operation_failed")
            return 500, failure.body(), []

    def _answer_idempotently(self, request: _Request) -> Answer:
        """Replay the first successful answer to a POST with a repeated chargebee-idempotency-key."""
        key = request.headers.get("chargebee-idempotency-key") if request.method == "POST" else None
        if not key:
            return 200, self._route(request), []
        with self._log_lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # two requests with one key at once: the second waits, then gets the first's answer
            with self._log_lock:
                replay = self._replies.get(key)
            if replay is not None:
                return 200, replay, [("chargebee-idempotency-replayed", "true")]
            body = self._route(request)
            with self._log_lock:
                self._replies.setdefault(key, body)
            return 200, body, []

    def _route(self, request: _Request) -> Body:
        path_known = False
        for method, pattern, handler in _ROUTES:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return handler(self, request, *match.groups())
            path_known = path_known or bool(match)
        if path_known:
            raise ChargebeeApiError(405, "http_method_not_supported", f"{request.method} is not allowed here")
        raise ChargebeeApiError(404, "resource_not_found", f"Unknown API path {request.path}")

    # ----- endpoints (each returns the JSON body of a 200) -------------------------------------

    def _create_customer(self, request: _Request) -> Body:
        return {"customer": self.create_customer(request.params.get("id") or None, **_customer_fields(request.params))}

    def _retrieve_customer(self, request: _Request, customer_id: str) -> Body:
        return {"customer": self.store.require("customer", customer_id)}

    def _update_customer(self, request: _Request, customer_id: str) -> Body:
        return {"customer": self.update_customer(customer_id, _customer_fields(request.params))}

    def _list_customers(self, request: _Request) -> Body:
        return self._list(request, "customer", ("id", "email", "company"), lambda customer: {"customer": customer})

    def _delete_customer(self, request: _Request, customer_id: str) -> Body:
        return {"customer": self.delete_customer(customer_id)}

    def _checkout_new(self, request: _Request) -> Body:
        params = request.params
        subscription = _nested(params, "subscription")
        checkout = {
            **_checkout_basics(params, self._requested_items(params, required=True)),
            "subscription_id": subscription.get("id") or None,
            "trial_end": _int(subscription.get("trial_end"), "subscription[trial_end]", None),
            "customer": _nested(params, "customer"),
        }
        page = self.open_checkout("checkout_new", request.site_url, checkout, params.get("pass_thru_content"))
        return {"hosted_page": page}

    def _checkout_existing(self, request: _Request) -> Body:
        params = request.params
        if not params.get("subscription[id]"):
            raise param_required("subscription[id]")
        checkout = {
            **_checkout_basics(params, self._requested_items(params, required=False)),
            "subscription_id": params["subscription[id]"],
            "replace": _bool(params.get("replace_items_list")),
        }
        page = self.open_checkout("checkout_existing", request.site_url, checkout, params.get("pass_thru_content"))
        return {"hosted_page": page}

    def _retrieve_hosted_page(self, request: _Request, page_id: str) -> Body:
        return {"hosted_page": self.store.require("hosted_page", page_id)}

    def _acknowledge(self, request: _Request, page_id: str) -> Body:
        return {"hosted_page": self.acknowledge_hosted_page(page_id)}

    def _retrieve_subscription(self, request: _Request, sub_id: str) -> Body:
        with self.store.transaction():
            return self.with_customer(self.store.require("subscription", sub_id))

    def _list_subscriptions(self, request: _Request) -> Body:
        filterable = ("id", "customer_id", "status", "updated_at")
        return self._list(request, "subscription", filterable, self.with_customer)

    def _cancel_for_items(self, request: _Request, sub_id: str) -> Body:
        params = request.params
        end_of_term = _bool(params.get("end_of_term")) or params.get("cancel_option") == "end_of_term"
        credit = _choice(params, "credit_option_for_current_term_charges", ("none", "prorate", "full"))
        refund = _choice(params, "refundable_credits_handling", ("no_action", "schedule_refund"))
        if end_of_term and (credit or refund):
            raise param_wrong_value("end_of_term", "credits and refunds apply only to an immediate cancellation")
        sub = self.cancel_subscription(sub_id, end_of_term, source="api")
        body = self.with_customer(sub)
        if credit in ("full", "prorate"):
            body["credit_notes"] = [credit_note(sub, credit, refund == "schedule_refund", self.store.now())]
        return body

    def _create_portal_session(self, request: _Request) -> Body:
        customer_id = request.params.get("customer[id]")
        if not customer_id:
            raise param_required("customer[id]")
        session = self.create_portal_session(customer_id, request.site_url, request.params.get("redirect_url"))
        return {"portal_session": session}

    def _list_events(self, request: _Request) -> Body:
        return self._list(request, "event", ("id", "event_type", "source"), lambda event: {"event": event})

    def _retrieve_event(self, request: _Request, event_id: str) -> Body:
        return {"event": self.store.require("event", event_id)}

    def _list_webhook_endpoints(self, request: _Request) -> Body:
        return self._list(request, "webhook_endpoint", ("id",), lambda endpoint: {"webhook_endpoint": endpoint})

    def _list(self, request: _Request, kind: str, filterable: tuple[str, ...], entry: Callable[[Body], Body]) -> Body:
        """A page of `kind`, newest first; `next_offset` is present only when there is more."""
        limit = _int(request.params.get("limit"), "limit", 10, minimum=1, maximum=100)
        filters = _filters(request.params, filterable)
        with self.store.transaction():
            objects, next_offset = self.store.page(kind, filters, limit, request.params.get("offset"))
            body: Body = {"list": [entry(obj) for obj in objects]}
        if next_offset:
            body["next_offset"] = next_offset
        return body

    def _requested_items(self, params: dict[str, str], required: bool) -> list[Body]:
        requested = _indexed(params, "subscription_items")
        if required and not (requested and requested[0].get("item_price_id")):
            raise param_required("subscription_items[item_price_id][0]")
        items = []
        for index, entry in enumerate(requested):
            param = f"subscription_items[item_price_id][{index}]"
            if not entry.get("item_price_id"):
                raise param_required(param)
            quantity = _int(entry.get("quantity"), f"subscription_items[quantity][{index}]", 1, minimum=1)
            unit_price = _int(entry.get("unit_price"), f"subscription_items[unit_price][{index}]", None, minimum=0)
            items.append(self.item(entry["item_price_id"], index, quantity, unit_price, param))
        return items


# ----- request parsing ------------------------------------------------------------------------------


def _matches(method: str | None, path: str | None, actual_method: str, actual_path: str) -> bool:
    if method is not None and method.upper() != actual_method:
        return False
    if path is None:
        return True
    return actual_path.startswith(path[:-1]) if path.endswith("*") else actual_path == path


def _parse_request(environ: dict[str, Any]) -> _Request | None:
    """Split the URL at /api/v2 (so any mount prefix works) and flatten query and form params."""
    raw_path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    full_path = raw_path.encode("latin-1").decode("utf-8", "replace")  # WSGI paths are latin-1; ids may be UTF-8
    match = re.fullmatch(r"(.*?)/api/v2(/.*)?", full_path)
    if not match:
        return None
    method = environ["REQUEST_METHOD"].upper()
    params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if method == "POST":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    headers = {
        key[5:].lower().replace("_", "-"): value
        for key, value in environ.items()
        if key.startswith(("HTTP_CHARGEBEE_", "HTTP_X_CB_"))
    }
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    site_url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{match[1]}"
    return _Request(method, match[2] or "/", params, headers, _basic_auth_user(environ), site_url)


def _basic_auth_user(environ: dict[str, Any]) -> str:
    """Chargebee's auth: HTTP Basic with the API key as the user name and no password."""
    scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(encoded).decode("utf-8").partition(":")[0]
    except ValueError:
        return ""


_FAULTS = {
    429: (
        "api_request_limit_exceeded",
        "Sorry, access has been blocked temporarily due to request count exceeding acceptable limits.",
    ),
    503: (
        "internal_temporary_error",
        "Sorry, the server is currently unable to handle the request due to a temporary overload.",
    ),
}
_INTERNAL_ERROR = ("internal_error", "Sorry, something went wrong when trying to process the request.")


def _fault_error(status: int) -> ChargebeeApiError:
    code, message = _FAULTS.get(status, _INTERNAL_ERROR)
    return ChargebeeApiError(status, code, message, error_type="operation_failed")


def _nested(params: dict[str, str], prefix: str) -> dict[str, str]:
    """`customer[id]=x` -> {"id": "x"} for prefix "customer"."""
    pattern = re.compile(re.escape(prefix) + r"\[(\w+)\]")
    return {m[1]: value for key, value in params.items() if (m := pattern.fullmatch(key))}


def _indexed(params: dict[str, str], prefix: str) -> list[dict[str, str]]:
    """`subscription_items[quantity][0]=3` -> [{"quantity": "3"}], in index order."""
    pattern = re.compile(re.escape(prefix) + r"\[(\w+)\]\[(\d+)\]")
    by_index: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        if m := pattern.fullmatch(key):
            by_index.setdefault(int(m[2]), {})[m[1]] = value
    return [by_index[index] for index in sorted(by_index)]


def _filters(params: dict[str, str], filterable: tuple[str, ...]) -> list[Filter]:
    """List filters such as `status[is]=active`, `status[in]=["active","in_trial"]` or `updated_at[after]=<unix s>`."""
    filters: list[Filter] = []
    for key, value in params.items():
        m = re.fullmatch(r"(\w+)\[(is|is_not|in|not_in|after|before)\]", key)
        if not m or m[1] not in filterable:
            continue
        if m[2] in ("after", "before"):
            filters.append((m[1], m[2], _int(value, key, None)))
        elif m[2] in ("in", "not_in"):
            try:  # the Python SDK sends str(list), with single quotes; other clients send JSON
                values = json.loads(value.replace("'", '"'))
            except ValueError:
                raise param_wrong_value(key, "must be a list") from None
            filters.append((m[1], m[2], [str(v) for v in values]))
        else:
            filters.append((m[1], m[2], value))
    return filters


def _int(
    value: str | None, param: str, default: int | None, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise param_wrong_value(param, "must be an integer") from None
    if minimum is not None and number < minimum:
        raise param_wrong_value(param, f"cannot be less than {minimum}")
    if maximum is not None and number > maximum:
        raise param_wrong_value(param, f"cannot be more than {maximum}")
    return number


def _bool(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _choice(params: dict[str, str], param: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(param) or None
    if value is not None and value not in allowed:
        raise param_wrong_value(param, f"must be one of {', '.join(allowed)}")
    return value


def _customer_fields(params: dict[str, str]) -> Body:
    """Customer attributes from a create/update request. meta_data must be a JSON object: the SDK
    sends a dict as its Python repr (and lowercases its keys), so callers must send a JSON string."""
    fields: Body = {key: params[key] for key in CUSTOMER_FIELDS if key in params}
    if params.get("meta_data"):
        try:
            meta_data = json.loads(params["meta_data"])
        except ValueError:
            raise param_wrong_value("meta_data", "invalid JSON") from None
        if not isinstance(meta_data, dict):
            raise param_wrong_value("meta_data", "must be a JSON object")
        fields["meta_data"] = meta_data
    return fields


def _checkout_basics(params: dict[str, str], items: list[Body]) -> Body:
    """What every checkout keeps: its items, and where the sandbox UI sends the customer after."""
    return {"items": items, "redirect_url": params.get("redirect_url"), "cancel_url": params.get("cancel_url")}


_ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Body]]] = [
    (method, re.compile(pattern), handler)
    for method, pattern, handler in [
        ("POST", r"/customers", FakeChargebee._create_customer),
        ("GET", r"/customers", FakeChargebee._list_customers),
        ("GET", r"/customers/([^/]+)", FakeChargebee._retrieve_customer),
        ("POST", r"/customers/([^/]+)", FakeChargebee._update_customer),
        ("POST", r"/customers/([^/]+)/delete", FakeChargebee._delete_customer),
        ("POST", r"/hosted_pages/checkout_new_for_items", FakeChargebee._checkout_new),
        ("POST", r"/hosted_pages/checkout_existing_for_items", FakeChargebee._checkout_existing),
        ("GET", r"/hosted_pages/([^/]+)", FakeChargebee._retrieve_hosted_page),
        ("POST", r"/hosted_pages/([^/]+)/acknowledge", FakeChargebee._acknowledge),
        ("GET", r"/subscriptions", FakeChargebee._list_subscriptions),
        ("GET", r"/subscriptions/([^/]+)", FakeChargebee._retrieve_subscription),
        ("POST", r"/subscriptions/([^/]+)/cancel_for_items", FakeChargebee._cancel_for_items),
        ("POST", r"/portal_sessions", FakeChargebee._create_portal_session),
        ("GET", r"/events", FakeChargebee._list_events),
        ("GET", r"/events/([^/]+)", FakeChargebee._retrieve_event),
        ("GET", r"/webhook_endpoints", FakeChargebee._list_webhook_endpoints),
        *fake_chargebee_invoices.ROUTES,
        *fake_chargebee_payment_sources.ROUTES,
        *fake_chargebee_customers.ROUTES,
        *fake_chargebee_prices.ROUTES,
        *fake_chargebee_changes.ROUTES,
        *fake_chargebee_renewals.ROUTES,
    ]
]


# ----- serving --------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No request lines on stderr: the call log is the place to look."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False  # a request sleeping for fail_next(timeout_seconds=...) must not hold up stop()
    # socketserver's default backlog of 5 overflows when tests open 20 connections at once, and the kernel then
    # resets some of them ("connection reset by peer"); Chargebee itself takes any number of callers.
    request_queue_size = 128

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.busy = 0  # requests being handled, including work an app does after answering
        self.idle = threading.Condition()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.idle:
            self.busy += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.idle:
                self.busy -= 1
                self.idle.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients that timed out hang up mid-answer
            super().handle_error(request, client_address)


@dataclass
class RunningServer:
    """A fake served on a background thread; call stop(), or use it as a context manager."""

    url: str
    port: int
    _server: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def wait_idle(self, timeout: float) -> bool:
        """True once no request is being handled (an app's work after its answer included)."""
        server = self._server
        with server.idle:  # type: ignore[attr-defined]
            return server.idle.wait_for(lambda: server.busy == 0, timeout)  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(fake: FakeChargebee | WsgiApp, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `fake` (or any WSGI app wrapping it) over real HTTP; port 0 picks a free port, and
    `.url` is the API base to give the SDK, ending in /api/v2."""
    server = make_server(host, port, fake, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    # A short poll interval keeps stop() (which waits for the loop to notice) fast in test teardown.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-chargebee", daemon=True)
    thread.start()
    actual_port = server.server_address[1]
    return RunningServer(f"http://{host}:{actual_port}{API_PREFIX}", actual_port, server, thread)
