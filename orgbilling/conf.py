"""The one place orgbilling reads its settings.

Values are looked up on ``django.conf.settings`` when first asked for and
remembered until Django reports a settings change, never frozen at import, so
``override_settings`` and the test ``settings`` fixture are always seen. Every
setting has a default here so a host project only sets what it needs.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

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
    # Scalekit management client (orgbilling.scalekit_management): seconds, and retries of a call.
    "SCALEKIT_CONNECT_TIMEOUT": 5,
    "SCALEKIT_READ_TIMEOUT": 10,
    "SCALEKIT_MAX_RETRIES": 2,
    "SCALEKIT_RETRY_BACKOFF": 0.5,
    # orgbilling_sync holds a lease this many seconds, renewed as it makes progress; a run that dies
    # blocks the next one at most this long.
    "ORGBILLING_SYNC_LEASE_SECONDS": 600,
    # --- Health (orgbilling.health, manage.py orgbilling_health): seconds; None turns a check off.
    # A delivery still unfinished this long after it was due (a lost worker, a crash mid-processing).
    "ORGBILLING_HEALTH_DELIVERY_LEASE": 900,
    # Longest quiet spell per vendor before it counts as "stopped sending" (set what your traffic makes normal).
    "ORGBILLING_HEALTH_WEBHOOK_MAX_AGE": {"chargebee": 2 * 86400, "scalekit": None},
    # Longest time since each sync pass last completed a full run, and (for a cron'd --since run) any run.
    "ORGBILLING_HEALTH_SYNC_MAX_AGE": 26 * 3600,
    "ORGBILLING_HEALTH_SINCE_SYNC_MAX_AGE": None,
    # Largest webhook body accepted, in bytes.
    "ORGBILLING_WEBHOOK_MAX_BYTES": 1024 * 1024,
    # Scalekit's tolerance for webhook timestamps, in seconds, both ways.
    "ORGBILLING_WEBHOOK_TOLERANCE": 300,
    # Re-read each Chargebee event from the API before applying it (one call per webhook), for
    # deployments that do not trust Basic Auth alone. Off: a webhook costs no Chargebee call.
    "ORGBILLING_CHARGEBEE_STRICT_WEBHOOKS": False,
    # --- Processing (orgbilling.webhook_views, orgbilling.tasks)
    # "inline" processes a delivery in the request that brought it; "queue" answers once it is recorded
    # and leaves it to task workers (django-tasks; `manage.py db_worker` with its database backend).
    "ORGBILLING_PROCESSING": "inline",
    # Queue mode: tries per delivery before it is left failed for replay, and the delay before the
    # second try in seconds (doubled for each further try).
    "ORGBILLING_QUEUE_MAX_ATTEMPTS": 8,
    "ORGBILLING_QUEUE_RETRY_BACKOFF": 30,
    # Seconds an attempt may run before it counts as lost and the delivery's next task takes over.
    # Longer than the longest attempt: its ORGBILLING_VENDOR_TIME_BUDGET of calls, then the few
    # calls that may follow, each up to (5 + 20) s x 3 tries with the gateway's defaults.
    "ORGBILLING_QUEUE_LEASE": 600,
    # Deliveries a worker's claim applies together, with one commit, when they need no vendor call (1: one
    # at a time). Bigger batches drain a burst faster and hold their rows locked a little longer.
    "ORGBILLING_QUEUE_BATCH": 50,
    # Seconds a worker waits after a claim that found less than a full batch, before it claims again: the
    # deliveries arriving meanwhile share the next claim's work (its statements and commit) instead of each
    # paying for a claim of its own. Delays a delivery's apply by at most this much; 0: never waits. At 0.2 s a
    # burst of 300 a second fills a batch of 50 (bench/: the workers' and PostgreSQL's CPU per delivery a third lower
    # than at 0.05 s).
    "ORGBILLING_QUEUE_LINGER": 0.2,
    # Seconds of Chargebee calls one attempt starts before it leaves the rest (the cancellations of a
    # deleted organization) to the next attempt: Scalekit waits 10 s for an answer.
    "ORGBILLING_VENDOR_TIME_BUDGET": 5,
    # --- Sign-in (orgbilling.scalekit_auth, orgbilling.middleware)
    # The SDK's session cookie name (scalekit.middleware.session_manager.DEFAULT_COOKIE_NAME).
    "SCALEKIT_COOKIE_NAME": "sk_session",
    # Expected access-token `iss` and `aud`; empty means SCALEKIT_ENV_URL and SCALEKIT_CLIENT_ID.
    "ORGBILLING_TOKEN_ISSUER": "",
    "ORGBILLING_TOKEN_AUDIENCE": "",
    # Seconds the JWKS is kept before it is fetched again, and the shortest gap between
    # two extra fetches triggered by tokens naming an unknown key id (key rotation).
    "ORGBILLING_JWKS_CACHE_SECONDS": 300,
    "ORGBILLING_JWKS_REFETCH_COOLDOWN": 30,
    # Seconds after a failed build of the Scalekit SDK's client (Scalekit unreachable) before this
    # process tries again; meanwhile cookie sign-in answers 503 with Retry-After.
    "ORGBILLING_SIGN_IN_RETRY_SECONDS": 30,
    # More path prefixes (of path_info) that never look at tokens or cookies. orgbilling's own webhook
    # routes never do, wherever they are mounted: vendors authenticate themselves.
    "ORGBILLING_AUTH_EXEMPT_PATHS": [],
    # --- Authorization (orgbilling.authorization)
    # Holders of any of these Scalekit roles or permissions may change billing.
    "ORGBILLING_BILLING_MANAGER_ROLES": ["admin"],
    "ORGBILLING_BILLING_MANAGER_PERMISSIONS": [],
    # Dotted path to hook(context, reference_id, action) that may deny more; empty for none.
    "ORGBILLING_AUTHORIZATION_HOOK": "",
    # Chargebee-calling actions allowed per organization's billing managers, and per other user, in a
    # window ("N/second|minute|hour|day"; empty: none). Counted in Redis when REDIS_URL is set, else in
    # a database row (orgbilling.throttle); or in the Django cache named here (a shared, atomic one).
    "ORGBILLING_THROTTLE_RATE": "10/minute",
    "ORGBILLING_THROTTLE_CACHE": "",
    "REDIS_URL": "",
    # --- Seats (orgbilling.seat_limits, orgbilling.seat_counts)
    # The cap sent to Scalekit for an organization with no entitling subscription: None for no cap (so
    # installing orgbilling never locks anyone out), or a number >= 1 for a free tier.
    "ORGBILLING_SEATS_WITHOUT_SUBSCRIPTION": None,
    # What counts as a seat used: "memberships" (Scalekit's members and invites; Scalekit enforces the cap) or
    # "directory" (the organization's active SCIM directory users; orgbilling decides and signals whom to block).
    "ORGBILLING_SEAT_SOURCE": "memberships",
    # Inline processing: seconds between two member recounts of one organization triggered by webhooks
    # (the rest are left to orgbilling_sync's seat pass). Queue mode: seconds after which a recount task
    # that never ran (a lost worker) no longer blocks queueing another.
    "ORGBILLING_SEAT_RECOUNT_INTERVAL": 10,
    "ORGBILLING_SEAT_RECOUNT_LEASE": 600,
    # --- Past due (orgbilling.models, orgbilling.payment_health): days a past-due subscription keeps
    # its entitlements after due_since.
    "ORGBILLING_PAST_DUE_GRACE_DAYS": 7,
    # --- Plans (orgbilling.plans): a list of dicts; None offers CHARGEBEE_PLAN_ITEM_PRICE_ID alone.
    "ORGBILLING_PLANS": None,
}


# Values already read. Every request reads several settings, and reading one a project leaves at its
# default costs an AttributeError inside Django's LazySettings; Django announces every change made
# through override_settings (and pytest-django's ``settings``) with ``setting_changed``, which empties this.
_values: dict[str, Any] = {}


def get(name: str) -> Any:
    """Return setting ``name``, falling back to orgbilling's default."""
    try:
        return _values[name]
    except KeyError:
        if name not in DEFAULTS:
            raise KeyError(f"orgbilling has no setting named {name}") from None
    value = _values[name] = getattr(settings, name, DEFAULTS[name])
    return value


@receiver(setting_changed)
def _forget_values(**kwargs: Any) -> None:
    _values.clear()


def get_list(name: str) -> list[str]:
    """Return a setting that may hold several values (a list or a comma-separated string)."""
    value = get(name)
    if isinstance(value, str):
        value = value.split(",")
    return [item.strip() for item in value if item and item.strip()]
