"""Settings for the orgbilling reference project.

Everything comes from the environment (django-environ); a `.env` file beside
manage.py is read when present. With nothing configured the project runs in
DEBUG on a SQLite file, so a fresh clone works end to end.
"""

import os
import tempfile
from pathlib import Path

import environ
from django.urls import reverse_lazy

from orgbilling import task_api
from sandbox import settings_overlay

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # silently skipped when the file is absent

DEBUG = env.bool("DEBUG", default=True)
# A throwaway key is fine for local runs only; production must provide one.
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
APP_URL = env("APP_URL", default="http://localhost:8000")  # scheme and host: paths come from the two below
# Mounted anywhere: FORCE_SCRIPT_NAME when a proxy serves the whole site under a path ("/billing-app"),
# BILLING_URL_PREFIX when this project serves orgbilling's routes under one of its own paths ("billing-app/").
FORCE_SCRIPT_NAME = env("FORCE_SCRIPT_NAME", default=None)
BILLING_URL_PREFIX = env("BILLING_URL_PREFIX", default="")
SITE_URL = APP_URL.rstrip("/") + (FORCE_SCRIPT_NAME or "").rstrip("/")
BILLING_URL = f"{SITE_URL}/{BILLING_URL_PREFIX}".rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[APP_URL])

# Production hardening, on whenever DEBUG is off (`manage.py check --deploy` reports nothing).
# Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=true so Django trusts X-Forwarded-Proto.
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # The task queue's table and `manage.py db_worker` (ORGBILLING_PROCESSING=queue); on Django 5.2 also
    # the tasks API's backport (`django_tasks`), which Django 6 has built in.
    *task_api.INSTALLED_APPS,
    "orgbilling",
    "sandbox",  # fake vendors; serves nothing unless SANDBOX_ENABLED
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "orgbilling.request_log.RequestLogMiddleware",  # X-Request-ID, one log record per request
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "orgbilling.middleware.BillingContextMiddleware",  # request.billing (Scalekit token or session)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "billing_project.urls"
WSGI_APPLICATION = "billing_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes concurrent writers queue on the lock instead of failing
    # with "database is locked" when a read transaction tries to upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
    # Tests get a file, not Django's shared-cache in-memory database: there a second thread's write fails at once
    # with "database table is locked" (a table lock ignores the timeout above), and the sandbox's webhooks are
    # answered on other threads while a test writes. One file per test process, so two runs never share one.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"orgbilling-test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# One JSON object per line on stderr (LOG_FORMAT=plain for humans, with control characters escaped); no secrets or
# payloads are logged. Every logger reaches the one console handler through the root. orgbilling.requests writes one
# record per request (the matched URL pattern, never the raw path or query string), so Django's own request loggers,
# which write the raw path (runserver's even the query string) and a second record per 500, go nowhere.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "orgbilling.log_format.JsonFormatter"},
        "plain": {
            "class": "orgbilling.log_format.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env("LOG_FORMAT", default="plain" if DEBUG else "json"),
        },
        "nowhere": {"class": "logging.NullHandler"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "orgbilling": {"level": env("LOG_LEVEL", default="INFO")},
        "django": {"handlers": [], "level": "INFO"},  # Django's default handlers out: the root's console writes
        "django.request": {"handlers": ["nowhere"], "propagate": False},
        "django.server": {"handlers": ["nowhere"], "propagate": False},
        # The vendor clients log whole URLs and payloads (hosted page ids, portal and PDF links) at DEBUG and INFO:
        # pinned to WARNING so lowering the root level to debug something else cannot leak them.
        "chargebee": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- Webhook processing --------------------------------------------------
# "inline" (default) processes each delivery in its request; "queue" answers as soon as it is
# recorded and leaves processing to `manage.py db_worker` processes on any number of machines.
ORGBILLING_PROCESSING = env("ORGBILLING_PROCESSING", default="inline")
TASKS = {"default": {"BACKEND": task_api.DATABASE_BACKEND}}
# The throttle's shared counter (orgbilling.throttle); empty: a database row.
# Chargebee-calling actions per organization's billing managers (and per other user) in a window,
# counted in Redis when REDIS_URL is set, else in a database row (orgbilling.throttle).
ORGBILLING_THROTTLE_RATE = env("ORGBILLING_THROTTLE_RATE", default="10/minute")
REDIS_URL = env("REDIS_URL", default="")

# --- Vendors -------------------------------------------------------------
# Read by orgbilling.conf at call time. Secrets and Basic Auth credentials may
# be comma-separated lists so they can be rotated without downtime.
SCALEKIT_ENV_URL = env("SCALEKIT_ENV_URL", default="")
SCALEKIT_CLIENT_ID = env("SCALEKIT_CLIENT_ID", default="")
SCALEKIT_CLIENT_SECRET = env("SCALEKIT_CLIENT_SECRET", default="")
SCALEKIT_WEBHOOK_SECRET = env("SCALEKIT_WEBHOOK_SECRET", default="")
SCALEKIT_REDIRECT_URI = env("SCALEKIT_REDIRECT_URI", default=f"{BILLING_URL}/auth/callback")
SCALEKIT_COOKIE_ENCRYPTION_SECRET = env("SCALEKIT_COOKIE_ENCRYPTION_SECRET", default="")
SCALEKIT_COOKIE_SECURE = env.bool("SCALEKIT_COOKIE_SECURE", default=not DEBUG)
# Read by the Scalekit SDK's login/callback/logout views (orgbilling serves them under auth/); lazy, so
# they carry the script name and the mount wherever the project puts them.
SCALEKIT_LOGIN_PATH = reverse_lazy("orgbilling:login")
SCALEKIT_POST_LOGIN_REDIRECT = reverse_lazy("orgbilling:billing")
SCALEKIT_POST_LOGOUT_REDIRECT_URI = env("SCALEKIT_POST_LOGOUT_REDIRECT_URI", default=f"{BILLING_URL}/billing")

CHARGEBEE_SITE = env("CHARGEBEE_SITE", default="")
CHARGEBEE_API_KEY = env("CHARGEBEE_API_KEY", default="")
CHARGEBEE_API_BASE_URL = env("CHARGEBEE_API_BASE_URL", default="")
CHARGEBEE_PLAN_ITEM_PRICE_ID = env("CHARGEBEE_PLAN_ITEM_PRICE_ID", default="")
CHARGEBEE_GATEWAY_ACCOUNT_ID = env("CHARGEBEE_GATEWAY_ACCOUNT_ID", default="")
CHARGEBEE_WEBHOOK_USERNAME = env("CHARGEBEE_WEBHOOK_USERNAME", default="")
CHARGEBEE_WEBHOOK_PASSWORD = env("CHARGEBEE_WEBHOOK_PASSWORD", default="")

# --- Sandbox -------------------------------------------------------------
# Fake Scalekit and Chargebee served by this same server under /sandbox/. On by
# default when no vendor credentials are configured; it then replaces every
# vendor setting above with its own (secrets kept in SANDBOX_DIR, gitignored).
# Refused by system check sandbox.E001 when DEBUG is off.
SANDBOX_ENABLED = env.bool("SANDBOX", default=settings_overlay.default_enabled())
if SANDBOX_ENABLED:
    globals().update(
        settings_overlay.vendor_settings(
            SITE_URL, Path(env("SANDBOX_DIR", default=str(BASE_DIR / "var" / "sandbox"))), BILLING_URL
        )
    )
    # Seconds before the fake Chargebee and Scalekit send a webhook (adjustable on /sandbox/).
    SANDBOX_WEBHOOK_DELAY = env.float("SANDBOX_WEBHOOK_DELAY", default=1.0)
    SANDBOX_WEBHOOK_DUPLICATE = env.bool("SANDBOX_WEBHOOK_DUPLICATE", default=False)
    SANDBOX_WEBHOOK_OUT_OF_ORDER = env.bool("SANDBOX_WEBHOOK_OUT_OF_ORDER", default=False)
