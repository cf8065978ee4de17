"""The one place orgbilling reads its settings.

Values are looked up on ``django.conf.settings`` each time they are asked for,
never frozen at import, so ``override_settings`` and a reloaded environment are
always seen. Every setting has a default here so a host project only sets what
it needs.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "APP_URL": "http://localhost:8000",
    "SCALEKIT_ENV_URL": "",
    "SCALEKIT_CLIENT_ID": "",
    "SCALEKIT_CLIENT_SECRET": "",
    "SCALEKIT_WEBHOOK_SECRET": "",
    "SCALEKIT_REDIRECT_URI": "",
    "SCALEKIT_COOKIE_ENCRYPTION_SECRET": "",
    "SCALEKIT_COOKIE_SECURE": True,
    "CHARGEBEE_SITE": "",
    "CHARGEBEE_API_KEY": "",
    "CHARGEBEE_API_BASE_URL": "",
    "CHARGEBEE_PLAN_ITEM_PRICE_ID": "",
    "CHARGEBEE_GATEWAY_ACCOUNT_ID": "",
    "CHARGEBEE_WEBHOOK_USERNAME": "",
    "CHARGEBEE_WEBHOOK_PASSWORD": "",
    # Gateway behaviour: seconds, and how often a retryable call is tried again.
    "CHARGEBEE_CONNECT_TIMEOUT": 5,
    "CHARGEBEE_READ_TIMEOUT": 20,
    "CHARGEBEE_MAX_RETRIES": 2,
    "CHARGEBEE_RETRY_BACKOFF": 0.5,
    # Largest webhook body accepted, in bytes.
    "ORGBILLING_WEBHOOK_MAX_BYTES": 1024 * 1024,
    # Scalekit's tolerance for webhook timestamps, in seconds, both ways.
    "ORGBILLING_WEBHOOK_TOLERANCE": 300,
}


def get(name: str) -> Any:
    """Return setting ``name``, falling back to orgbilling's default."""
    if name not in DEFAULTS:
        raise KeyError(f"orgbilling has no setting named {name}")
    return getattr(settings, name, DEFAULTS[name])


def get_list(name: str) -> list[str]:
    """Return a setting that may hold several values (a list or a comma-separated string)."""
    value = get(name)
    if isinstance(value, str):
        value = value.split(",")
    return [item.strip() for item in value if item and item.strip()]
