"""Shared fixtures: a live fake Chargebee over real HTTP, vendor samples, signed Scalekit deliveries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orgbilling import scalekit_signature

# hypothesis profiles, --fuzz, and the guard against sleeping tests; the previewed-change fixtures
pytest_plugins = ["tests.timing", "tests.change_support"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCALEKIT_SECRET = "whsec_dGVzdHNlY3JldA=="  # base64("testsecret"), as in Scalekit's Go SDK tests
CHARGEBEE_USER, CHARGEBEE_PASSWORD = "cb-hook", "cb-hook-password"


def sample(relative: str) -> dict:
    """A vendor-written payload from tests/fixtures (see its README for each source), parsed."""
    return json.loads((FIXTURES / relative).read_text())


def scalekit_headers(
    body: bytes, *, secret: str = SCALEKIT_SECRET, msg_id: str = "msg_1", at: int | None = None
) -> dict:
    """Headers (as Django test-client extra kwargs) carrying a valid Standard Webhooks signature."""
    timestamp = str(int(time.time()) if at is None else at)
    return {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": timestamp,
        "HTTP_WEBHOOK_SIGNATURE": scalekit_signature.sign(secret, msg_id, timestamp, body),
    }


@pytest.fixture(autouse=True)
def _fresh_organization_memo():
    """Each test's database starts empty, so the middleware's per-process memo must too."""
    from orgbilling.middleware import forget_seen_organizations

    forget_seen_organizations()


@pytest.fixture(autouse=True)
def vendor_settings(settings):
    """Hermetic vendor settings, whatever the developer's .env says."""
    settings.APP_URL = "http://testserver"
    settings.SCALEKIT_WEBHOOK_SECRET = SCALEKIT_SECRET
    settings.CHARGEBEE_SITE = "orgbilling-test"
    settings.CHARGEBEE_API_KEY = "test_key"
    settings.CHARGEBEE_API_BASE_URL = (
        "http://127.0.0.1:9/api/v2"  # nothing listens: tests that call Chargebee use the fake
    )
    settings.CHARGEBEE_PLAN_ITEM_PRICE_ID = "team-plan-USD-monthly"
    settings.ORGBILLING_PLANS = None  # the default catalog: that one plan
    settings.CHARGEBEE_WEBHOOK_USERNAME = CHARGEBEE_USER
    settings.CHARGEBEE_WEBHOOK_PASSWORD = CHARGEBEE_PASSWORD
    settings.CHARGEBEE_RETRY_BACKOFF = 0
    settings.CHARGEBEE_READ_TIMEOUT = 2
    settings.SCALEKIT_RETRY_BACKOFF = 0
    # The sandbox (on when no credentials are configured) fills these; tests that sign in set their own.
    for name in (
        "SCALEKIT_ENV_URL",
        "SCALEKIT_CLIENT_ID",
        "SCALEKIT_CLIENT_SECRET",
        "SCALEKIT_COOKIE_ENCRYPTION_SECRET",
    ):
        setattr(settings, name, "")
    return settings


DEFAULT_PLAN_PRICE = {
    "id": "team-plan-USD-monthly",
    "item_id": "team-plan",
    "external_name": "Team",
    "status": "active",
    "currency": "USD",
    "price": 1500,
    "pricing_model": "per_unit",
    "period": 1,
    "period_unit": "month",
    "trial_period": 14,
    "trial_period_unit": "day",
    "resource_version": 1,
}


def mirror_price(price_id: str, **fields) -> None:
    """Put an active plan price in the local catalog, as orgbilling_sync --prices would from Chargebee."""
    from orgbilling.models import ItemPrice

    values = {**DEFAULT_PLAN_PRICE, "item_id": price_id, "external_name": price_id, **fields}
    values.pop("id")
    ItemPrice.objects.update_or_create(id=price_id, defaults=values)


@pytest.fixture(autouse=True)
def default_plan_price(request):
    """Tests that use the database find the default plan (CHARGEBEE_PLAN_ITEM_PRICE_ID) in the mirrored
    catalog, so checkout offers it as a synced site does. ``@pytest.mark.empty_catalog`` opts out."""
    marker = request.node.get_closest_marker("django_db")
    uses_db = marker is not None or {"db", "transactional_db"} & set(request.fixturenames)
    if not uses_db or request.node.get_closest_marker("empty_catalog"):
        return
    request.getfixturevalue("transactional_db" if "transactional_db" in request.fixturenames else "db")
    mirror_price("team-plan-USD-monthly", item_id="team-plan", external_name="Team")


@pytest.fixture
def prepared_statements(monkeypatch):
    """PostgreSQL with psycopg preparing every statement at once; returns how many prepared statements match a LIKE."""
    from django.db import connection

    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "prepare_threshold", 0)
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "prepare_threshold", 0)

    def prepared(pattern: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [pattern])
            return cursor.fetchone()[0]

    return prepared


@pytest.fixture
def fake_chargebee(settings):
    """A fake Chargebee API served over real HTTP; the app's settings point at it."""
    from sandbox.fake_chargebee import FakeChargebee, serve
    from sandbox.fake_chargebee_prices import item_price_object

    fake = FakeChargebee()
    # The default plan as the site sells it: per seat, monthly, with a 14-day trial (checkout leaves it to Chargebee).
    default = {"item_id": "team-plan", "external_name": "Team", "price": 1500, "trial_period": 14}
    fake.seed_item_prices([item_price_object("team-plan-USD-monthly", **default)], record=False)
    server = serve(fake)
    settings.CHARGEBEE_API_BASE_URL = server.url
    yield fake
    fake.close()
    server.stop()


@pytest.fixture
def post_scalekit(client):
    """POST a signed Scalekit delivery to the webhook endpoint."""

    def post(payload: dict | bytes, *, path: str = "/api/webhooks/scalekit", **header_kwargs):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return client.post(path, body, content_type="application/json", **scalekit_headers(body, **header_kwargs))

    return post


@pytest.fixture(autouse=True)
def fresh_cache():
    """Every test starts with an empty Django cache (a throttle may be configured to count there)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def scalekit(settings):
    """A stand-in Scalekit environment: live JWKS server, token minting, the SDK's test client."""
    from tests.scalekit_support import ScalekitStub

    stub = ScalekitStub()
    stub.configure(settings)
    yield stub
    stub.stop()


@pytest.fixture
def served(fake_chargebee, tmp_path):
    """``served(workers=4, threads=1, **env)``: the project under gunicorn against the test database; its base URL.

    Real processes over real HTTP (``tests.processes.gunicorn``), pointed at
    the fake Chargebee; ``served.stub`` is the Scalekit stand-in whose keys
    they trust (``served.stub.sign_in(LiveClient(url))`` makes a session).
    Every server started is stopped at the end of the test.
    """
    from contextlib import ExitStack
    from itertools import count

    from django.conf import settings

    from tests.processes import app_environment, gunicorn
    from tests.scalekit_support import ScalekitStub

    stub, numbers = ScalekitStub(), count()
    with ExitStack() as running:

        def serve(workers: int = 4, threads: int = 1, **env: str) -> str:
            log = tmp_path / f"gunicorn-{next(numbers)}.log"
            env = app_environment(settings.CHARGEBEE_API_BASE_URL, stub.env_url, **env)
            return running.enter_context(gunicorn(env, log, workers=workers, threads=threads))

        serve.stub = stub
        yield serve
    stub.stop()
