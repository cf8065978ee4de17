"""System checks for orgbilling's settings.

Each problem has one id, ``orgbilling.E0xx``, whatever ``DEBUG`` says: a
warning while it is on (a fresh clone must start with nothing configured), an
error when it is off. Every check is tagged ``orgbilling``; the ones that need
vendor settings (secrets, plan ids) are deployment checks tagged ``deploy`` as
well, so ``migrate``, ``collectstatic`` and ``createcachetable`` run with none
set, while ``manage.py check --deploy`` and ``refuse_to_serve_misconfigured``
(called by the WSGI entry point: gunicorn does not start) report them. None
reads the database (there is no ``database`` tag to give yet).

Checks judge the configuration actually used: a setting that another one
makes irrelevant (``CHARGEBEE_PLAN_ITEM_PRICE_ID`` beside ``ORGBILLING_PLANS``,
``CHARGEBEE_SITE`` beside ``CHARGEBEE_API_BASE_URL``) is not asked for.
"""

from __future__ import annotations

import math
from urllib.parse import urlparse

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import SystemCheckError

from . import conf
from .scalekit_signature import InvalidSecret, decode_secret

TAG = "orgbilling"
DEPLOY = "deploy"
# Queue mode's numbers, each with its least value and whether it counts something (a whole number) or is seconds.
QUEUE_NUMBERS = (
    ("ORGBILLING_QUEUE_MAX_ATTEMPTS", 1, True),
    ("ORGBILLING_QUEUE_BATCH", 1, True),
    ("ORGBILLING_QUEUE_RETRY_BACKOFF", 0, False),
    ("ORGBILLING_QUEUE_LEASE", 1, False),
    ("ORGBILLING_QUEUE_LINGER", 0, False),
)


def _message(number: int, msg: str, hint: str) -> checks.CheckMessage:
    level = checks.Warning if settings.DEBUG else checks.Error
    return level(msg, hint=hint, id=f"orgbilling.E{number:03d}")


def refuse_to_serve_misconfigured() -> None:
    """Raise ``SystemCheckError`` naming every orgbilling error, deployment checks included.

    For WSGI/ASGI entry points: a server process must not start with, say, no
    Chargebee API key (``runserver`` and ``migrate`` run without deployment checks).
    """
    messages = checks.run_checks(include_deployment_checks=True, tags=[TAG])
    errors = [message for message in messages if message.is_serious() and not message.is_silenced()]
    if errors:
        raise SystemCheckError("orgbilling is misconfigured:\n" + "\n".join(str(error) for error in errors))


def _is_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


@checks.register(TAG, DEPLOY, deploy=True)
def check_scalekit(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    problems = []
    missing = [
        name for name in ("SCALEKIT_ENV_URL", "SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET") if not conf.get(name)
    ]
    if missing:
        problems.append(
            _message(
                1,
                f"Scalekit sign-in is not configured: {', '.join(missing)} empty.",
                "Copy them from the Scalekit dashboard (Settings > API credentials) into the environment.",
            )
        )
    elif not _is_url(conf.get("SCALEKIT_ENV_URL")):
        problems.append(
            _message(
                1,
                "SCALEKIT_ENV_URL is not an http(s) URL.",
                "Use your environment URL, e.g. https://yourapp.scalekit.dev",
            )
        )
    secrets = conf.get_list("SCALEKIT_WEBHOOK_SECRET")
    if not secrets:
        problems.append(
            _message(
                2,
                "SCALEKIT_WEBHOOK_SECRET is empty: /api/webhooks/scalekit refuses every delivery.",
                "Set it to the endpoint's signing secret (whsec_...); list several, comma-separated, to rotate.",
            )
        )
    for secret in secrets:
        try:
            decode_secret(secret)
        except InvalidSecret as exc:
            problems.append(
                _message(
                    2,
                    f"A SCALEKIT_WEBHOOK_SECRET entry is malformed: {exc}.",
                    "Copy the secret exactly as the Scalekit dashboard shows it (whsec_<base64>).",
                )
            )
    return problems


@checks.register(TAG, DEPLOY, deploy=True)
def check_chargebee(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    problems = []
    base_url = conf.get("CHARGEBEE_API_BASE_URL")
    if not conf.get("CHARGEBEE_API_KEY") or not (conf.get("CHARGEBEE_SITE") or base_url):
        problems.append(
            _message(
                3,
                "Chargebee is not configured: CHARGEBEE_SITE and CHARGEBEE_API_KEY are needed.",
                "Use the site name (the part before .chargebee.com) and a full-access API key.",
            )
        )
    if base_url and not (_is_url(base_url) and urlparse(base_url).path.rstrip("/").endswith("/api/v2")):
        problems.append(
            _message(
                4,
                "CHARGEBEE_API_BASE_URL must be a full http(s) URL ending in /api/v2.",
                "For example http://127.0.0.1:9000/api/v2, or leave it empty for https://{site}.chargebee.com/api/v2.",
            )
        )
    if not (conf.get_list("CHARGEBEE_WEBHOOK_USERNAME") and conf.get_list("CHARGEBEE_WEBHOOK_PASSWORD")):
        problems.append(
            _message(
                5,
                "Chargebee webhook Basic Auth is not configured: /api/webhooks/chargebee refuses every delivery.",
                "Set CHARGEBEE_WEBHOOK_USERNAME and CHARGEBEE_WEBHOOK_PASSWORD to the credentials of the Chargebee "
                "webhook endpoint.",
            )
        )
    plans = conf.get("ORGBILLING_PLANS")  # when set, the catalog; else CHARGEBEE_PLAN_ITEM_PRICE_ID alone
    if not (plans if plans is not None else conf.get("CHARGEBEE_PLAN_ITEM_PRICE_ID")):
        problems.append(
            _message(
                6,
                "There is no plan to subscribe to: ORGBILLING_PLANS is empty, or unset with "
                "CHARGEBEE_PLAN_ITEM_PRICE_ID empty.",
                "Set CHARGEBEE_PLAN_ITEM_PRICE_ID to the item price id of your plan in Chargebee (Product Catalog "
                "2.0), or list your plans in ORGBILLING_PLANS.",
            )
        )
    return problems


@checks.register(TAG, DEPLOY, deploy=True)
def check_sign_in(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The secret browser sign-in needs (the SDK's session cookie), read only when a user comes by."""
    if conf.get("SCALEKIT_COOKIE_ENCRYPTION_SECRET"):
        return []
    return [
        _message(
            7,
            "SCALEKIT_COOKIE_ENCRYPTION_SECRET is empty: nobody can sign in with a browser.",
            'Generate one (python -c "import secrets; print(secrets.token_urlsafe(32))") and use the same '
            "value on every server.",
        )
    ]


@checks.register(TAG)
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Settings the billing pages and checkout read only when a user comes by; no vendor secret among them."""
    from .authorization import throttle_rate
    from .plans import catalog

    problems = []
    if "orgbilling.middleware.BillingContextMiddleware" not in settings.MIDDLEWARE:
        problems.append(
            _message(
                8,
                "orgbilling.middleware.BillingContextMiddleware is not in MIDDLEWARE: billing sees nobody signed in.",
                "Add it after django.contrib.auth.middleware.AuthenticationMiddleware.",
            )
        )
    for number, read in ((9, catalog), (10, throttle_rate)):
        try:
            read()
        except ImproperlyConfigured as exc:
            problems.append(_message(number, str(exc), "See the setting's description in orgbilling/conf.py."))
    return problems


@checks.register(TAG)
def check_processing(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A known processing mode and, for the queue, a task backend that can schedule retries (``run_after``)."""
    mode = conf.get("ORGBILLING_PROCESSING")
    if mode not in ("inline", "queue"):
        return [
            checks.Error(
                f"ORGBILLING_PROCESSING is {mode!r}.",
                hint='Use "inline" (process in the webhook request) or "queue" (task workers).',
                id="orgbilling.E011",
            )
        ]
    if mode == "inline":
        return []
    return _queue_backend() + _queue_numbers()


def _queue_backend() -> list[checks.CheckMessage]:
    hint = (
        'Install orgbilling[queue], set TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}} and '
        'add "django_tasks_db" to INSTALLED_APPS (on Django 5.2 also "django_tasks", the tasks API\'s backport).'
    )
    try:
        from .tasks import process_delivery

        backend = process_delivery.get_backend()
    except (ImportError, ImproperlyConfigured) as exc:
        message = f"ORGBILLING_PROCESSING is 'queue' but no task backend: {exc}"
        return [checks.Error(message, hint=hint, id="orgbilling.E012")]
    if not backend.supports_defer:
        return [
            checks.Error(
                f"ORGBILLING_PROCESSING is 'queue' but the task backend {type(backend).__name__} cannot run a task "
                "later, so failed deliveries cannot be retried.",
                hint=hint,
                id="orgbilling.E012",
            )
        ]
    return []


def _queue_numbers() -> list[checks.CheckMessage]:
    """Each queue number a worker reads: a wrong one would fail its tasks only once deliveries arrive."""
    problems = []
    for name, least, whole in QUEUE_NUMBERS:
        value = conf.get(name)
        kinds = int if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value < least:
            kind = "a whole number" if whole else "a number of seconds"
            problems.append(
                checks.Error(f"{name} is {value!r}.", hint=f"Use {kind}, at least {least}.", id="orgbilling.E013")
            )
    return problems


@checks.register(TAG)
def check_seats(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A free tier of 0 seats would lock every organization without a subscription out of Scalekit."""
    value = conf.get("ORGBILLING_SEATS_WITHOUT_SUBSCRIPTION")
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return []
    return [
        checks.Error(
            f"ORGBILLING_SEATS_WITHOUT_SUBSCRIPTION is {value!r}.",
            hint="Use None (no cap without a subscription) or a whole number of at least 1 (a free tier).",
            id="orgbilling.E020",
        )
    ]
