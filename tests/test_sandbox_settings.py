"""When the sandbox is on, what it configures, the check that refuses it in production, and the demo command."""

from __future__ import annotations

import importlib
import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import clear_url_caches

from orgbilling.models import Organization
from sandbox import demo, runtime, settings_overlay
from sandbox.checks import check_debug
from tests.processes import free_port
from tests.sandbox_support import use_sandbox


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, True),
        ({"SCALEKIT_CLIENT_ID": ""}, True),
        ({"SCALEKIT_CLIENT_ID": "skc_1"}, False),
        ({"CHARGEBEE_API_KEY": "live_x"}, False),
    ],
)
def test_on_by_default_only_without_vendor_credentials(environ, enabled):
    assert settings_overlay.default_enabled(environ) is enabled


def test_secrets_are_generated_once_and_kept_private(tmp_path):
    first = settings_overlay.vendor_settings("http://localhost:8000/", tmp_path)
    again = settings_overlay.vendor_settings("http://localhost:8000", tmp_path)

    assert first == again
    assert first["SCALEKIT_ENV_URL"] == "http://localhost:8000/sandbox/scalekit"
    assert first["CHARGEBEE_API_BASE_URL"] == "http://localhost:8000/sandbox/chargebee/api/v2"
    assert first["SCALEKIT_WEBHOOK_SECRET"].startswith("whsec_")
    for name in (settings_overlay.CREDENTIALS_FILE, settings_overlay.SIGNING_KEY_FILE):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0
    assert (
        settings_overlay.vendor_settings("http://x", tmp_path / "other")["SCALEKIT_CLIENT_SECRET"]
        != first["SCALEKIT_CLIENT_SECRET"]
    )


@pytest.mark.parametrize(
    ("enabled", "debug", "ids"), [(True, False, ["sandbox.E001"]), (True, True, []), (False, False, [])]
)
def test_check_refuses_the_sandbox_without_debug(settings, enabled, debug, ids):
    settings.SANDBOX_ENABLED, settings.DEBUG = enabled, debug
    assert [message.id for message in check_debug()] == ids


def test_disabled_sandbox_serves_nothing(client, settings):
    import billing_project.urls

    original, settings.SANDBOX_ENABLED = settings.SANDBOX_ENABLED, False
    try:
        clear_url_caches()
        importlib.reload(billing_project.urls)
        assert client.get("/sandbox/").status_code == 404
        assert client.get("/sandbox/scalekit/keys").status_code == 404
    finally:
        settings.SANDBOX_ENABLED = original
        importlib.reload(billing_project.urls)
        clear_url_caches()


@pytest.mark.django_db(transaction=True)
def test_demo_setup_provisions_through_webhooks_and_can_run_twice(settings, tmp_path):
    use_sandbox(settings, f"http://127.0.0.1:{free_port()}", tmp_path / "sandbox")
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    outputs = []
    for _ in range(2):
        out = StringIO()
        call_command("sandbox_demo_setup", stdout=out, stderr=out)
        outputs.append(out.getvalue())
        runtime.reset()  # as a new process would

    assert set(Organization.objects.values_list("id", flat=True)) == set(demo.DEMO_ORGANIZATIONS)
    assert {customer["id"] for customer in runtime.chargebee().store.find("customer", [])} == set(
        demo.DEMO_ORGANIZATIONS
    )
    password = json.loads((tmp_path / "sandbox" / settings_overlay.CREDENTIALS_FILE).read_text())[
        "django_admin_password"
    ]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    for output in outputs:
        assert f"password {password}" in output
        assert "ada@acme.test" in output and "not accepted" not in output


def test_demo_setup_does_nothing_when_the_sandbox_is_off(settings):
    settings.SANDBOX_ENABLED = False
    out = StringIO()
    call_command("sandbox_demo_setup", stdout=out)
    assert "sandbox is off" in out.getvalue()
