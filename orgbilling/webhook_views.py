"""Webhook endpoints. Thin: authenticate, validate, record, process (or queue), answer.

Status codes, for both vendors:

* 200 processed, ignored, or already handled (a duplicate);
* 202 recorded and queued (``ORGBILLING_PROCESSING = "queue"``): a worker
  processes it (``orgbilling.tasks``); a duplicate of a delivery not yet
  processed is queued only if it has no task pending (so a crash between
  recording and queueing heals, and redeliveries never add retry chains);
* 409 in inline mode while another attempt at the same delivery holds its
  lease: nothing was done, and the vendor's retry finds it done (or, if that
  attempt was lost, runs it again once the lease has run out);
* 400 malformed body (nothing written);
* 401 missing or wrong signature / credentials (nothing written);
* 413 body over ``ORGBILLING_WEBHOOK_MAX_BYTES`` (nothing written);
* 503 the endpoint's secrets are not configured (the vendor retries later);
* 500 processing failed: the delivery is kept as failed and the vendor's retry
  (or a replay) processes it again.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import chargebee_events, conf, deliveries, local_deliveries, scalekit_events, scalekit_signature
from .models import WebhookDelivery

logger = logging.getLogger(__name__)


class Rejected(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.message}, status=self.status)
        for key, value in self.headers.items():
            response[key] = value
        return response


def read_body(request: HttpRequest) -> bytes:
    """The raw body, refusing anything over the size limit before reading it all."""
    limit = conf.get("ORGBILLING_WEBHOOK_MAX_BYTES")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Rejected(400, "invalid Content-Length") from None
    if declared > limit:
        raise Rejected(413, "body too large")
    try:
        body = request.body
    except RequestDataTooBig:
        raise Rejected(413, "body too large") from None
    if len(body) > limit:
        raise Rejected(413, "body too large")
    return body


def parsed(parse: Callable[[bytes], dict], body: bytes) -> dict:
    """Run a vendor's body parser; its ``MalformedEvent`` (a ValueError) becomes a 400."""
    try:
        return parse(body)
    except ValueError as exc:
        raise Rejected(400, str(exc)) from None


def record_and_process(vendor: str, event: dict, event_id: str, event_type: str, body: bytes) -> JsonResponse:
    """Record the delivery, then process it here or, in queue mode, leave it to a worker."""
    text = body.decode("utf-8")
    if conf.get("ORGBILLING_PROCESSING") == "queue":
        return record_and_queue(vendor, event_id, event_type, text)
    outcome = None
    if local_deliveries.applies_locally(vendor, event_type):
        outcome = local_deliveries.record_and_apply(vendor, event_id, event_type, text, event)
    if outcome is None:
        delivery = deliveries.record_delivery(vendor, event_id, event_type, text)
        outcome = deliveries.process_delivery(delivery.pk)
    logger.info(
        "webhook %s %s %s -> %s",
        vendor,
        event_type,
        event_id,
        outcome.status,
        extra={"vendor": vendor, "event_type": event_type, "event_id": event_id, "outcome": outcome.status},
    )
    status = 500 if outcome.failed else 409 if outcome.in_progress else 200
    body_status = "in_progress" if outcome.in_progress else outcome.status
    return JsonResponse({"eventId": event_id, "status": body_status, "duplicate": outcome.already_done}, status=status)


def record_and_queue(vendor: str, event_id: str, event_type: str, text: str) -> JsonResponse:
    """Queue mode's answer: 202 once recorded and queued; 200 for a delivery already done.

    A new event is recorded with its task in one commit; a copy of a recorded one is
    queued only if it has no task pending.
    """
    from . import tasks  # the tasks API is only installed with the queue extra

    delivery = tasks.record_and_enqueue(vendor, event_id, event_type, text)
    if delivery is None:
        delivery = deliveries.record_delivery(vendor, event_id, event_type, text)
        if not delivery.is_done:
            tasks.enqueue(delivery.pk)
    done = delivery.is_done
    status = delivery.status if done else "queued"
    fields = {"vendor": delivery.vendor, "event_type": delivery.event_type, "event_id": delivery.event_id}
    logger.info("webhook %s %s %s -> %s", *fields.values(), status, extra={**fields, "outcome": status})
    body = {"eventId": delivery.event_id, "status": status, "duplicate": done}
    return JsonResponse(body, status=200 if done else 202)


@csrf_exempt
@require_POST
def scalekit_webhook(request: HttpRequest) -> JsonResponse:
    """Scalekit organization events (Standard Webhooks signatures); status codes in the module docstring."""
    try:
        secrets = conf.get_list("SCALEKIT_WEBHOOK_SECRET")
        if not secrets:
            raise Rejected(503, "SCALEKIT_WEBHOOK_SECRET is not configured")
        body = read_body(request)
        try:
            scalekit_signature.verify(
                secrets, request.headers, body, tolerance=conf.get("ORGBILLING_WEBHOOK_TOLERANCE")
            )
        except scalekit_signature.SignatureError as exc:
            raise Rejected(401, str(exc)) from None
        event = parsed(scalekit_events.parse_event, body)
    except Rejected as rejection:
        return rejection.response()
    return record_and_process(WebhookDelivery.Vendor.SCALEKIT, event, event["id"], event["type"], body)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


def _check_basic_auth(request: HttpRequest) -> None:
    """Accept any configured username with any configured password, so either can be rotated.

    Every candidate is compared, in constant time, whatever matched before.
    """
    usernames = conf.get_list("CHARGEBEE_WEBHOOK_USERNAME")
    passwords = conf.get_list("CHARGEBEE_WEBHOOK_PASSWORD")
    if not usernames or not passwords:
        raise Rejected(503, "CHARGEBEE_WEBHOOK_USERNAME and CHARGEBEE_WEBHOOK_PASSWORD are not configured")
    username, password = _basic_credentials(request.headers.get("Authorization", "")) or ("", "")
    username_ok = [constant_time_compare(username, candidate) for candidate in usernames]
    password_ok = [constant_time_compare(password, candidate) for candidate in passwords]
    if not (any(username_ok) and any(password_ok)):
        raise Rejected(401, "missing or wrong Basic Auth credentials", {"WWW-Authenticate": 'Basic realm="orgbilling"'})


@csrf_exempt
@require_POST
def chargebee_webhook(request: HttpRequest) -> JsonResponse:
    """Chargebee events (HTTP Basic Auth, checked before the body is read); status codes in the module docstring."""
    try:
        _check_basic_auth(request)
        body = read_body(request)
        event = parsed(chargebee_events.parse_event, body)
    except Rejected as rejection:
        return rejection.response()
    return record_and_process(WebhookDelivery.Vendor.CHARGEBEE, event, event["id"], event["event_type"], body)
