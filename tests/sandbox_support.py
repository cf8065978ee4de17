"""Fixtures for the sandbox tests: sandbox settings in a temp folder, and the project served over real HTTP.

Import the fixtures a test module uses (``from tests.sandbox_support import sandbox, served_app``).
The app is served by a threaded WSGI server (the fake Chargebee's ``serve``), so the Scalekit SDK,
PyJWT's key client and the sandbox's webhook sender reach it the way they reach the vendors and the app.
"""

from __future__ import annotations

import pytest
from django.core.wsgi import get_wsgi_application

from sandbox import runtime, settings_overlay
from sandbox.fake_chargebee import RunningServer, serve


def use_sandbox(settings, app_url: str, sandbox_dir) -> None:
    """Point every vendor setting at a sandbox served at ``app_url``, with fresh sandbox objects."""
    for name, value in settings_overlay.vendor_settings(app_url, sandbox_dir).items():
        setattr(settings, name, value)
    settings.APP_URL = app_url
    settings.SANDBOX_ENABLED = True
    settings.SANDBOX_WEBHOOK_DELAY = 0
    settings.ROOT_URLCONF = "tests.sandbox_urls"
    runtime.reset()


def send_webhooks_to(settings, base_url: str) -> None:
    """Register ``base_url``'s /api/webhooks/{vendor} with the fake vendors instead of the app's endpoints."""
    settings.SANDBOX_WEBHOOK_URLS = {
        vendor: f"{base_url}/api/webhooks/{vendor}" for vendor in ("scalekit", "chargebee")
    }


@pytest.fixture
def sandbox(settings, tmp_path):
    """Sandbox settings for the Django test client (APP_URL http://testserver)."""
    use_sandbox(settings, "http://testserver", tmp_path / "sandbox")
    yield settings
    runtime.reset()


class ServedApp(str):
    """The served project's base URL, with its server (``.server.wait_idle``: work done after answering too)."""

    server: RunningServer


@pytest.fixture
def served_app(settings, tmp_path):
    """The whole project on a free local port, the sandbox pointing at it; yields its base URL (a ``ServedApp``)."""
    server = serve(get_wsgi_application())
    app_url = ServedApp(f"http://127.0.0.1:{server.port}")
    app_url.server = server
    settings.ALLOWED_HOSTS = ["127.0.0.1", "testserver"]
    use_sandbox(settings, app_url, tmp_path / "sandbox")
    yield app_url
    runtime.reset()
    server.stop()
