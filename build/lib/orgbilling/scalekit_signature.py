"""Standard Webhooks signature check for Scalekit deliveries.

Written here instead of calling ``ScalekitClient.verify_webhook_payload``
because building that client does network I/O, and its header lookup is
case-sensitive. This check needs only the secret(s) and the raw body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"


class SignatureError(Exception):
    """The delivery is not provably from Scalekit (missing, bad or stale signature)."""


class InvalidSecret(ValueError):
    """A configured secret is not ``whsec_<base64>``."""


def decode_secret(secret: str) -> bytes:
    """Return the HMAC key inside a ``whsec_<base64>`` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("a Scalekit webhook secret starts with 'whsec_'")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise InvalidSecret(f"the part after 'whsec_' is not base64: {exc}") from exc


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1,<base64>`` signature Scalekit sends for this message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secrets: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    """Raise ``SignatureError`` unless ``body`` carries a valid signature from any of ``secrets``.

    ``headers`` is looked up case-insensitively. Each configured secret is
    tried, so a secret can be rotated by listing old and new side by side.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not a unix time") from None
    now = time.time() if now is None else now
    if now - sent_at > tolerance:
        raise SignatureError("webhook timestamp too old")
    if sent_at - now > tolerance:
        raise SignatureError("webhook timestamp too new")

    offered = [entry.split(",", 1)[1] for entry in signatures.split() if entry.startswith("v1,")]
    for secret in secrets:
        try:
            expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
        except InvalidSecret:
            continue  # reported by system check orgbilling.E002; the other secrets still count
        # compare_digest on every candidate: no early exit that leaks timing.
        if any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in offered):
            return
    raise SignatureError("invalid signature")
