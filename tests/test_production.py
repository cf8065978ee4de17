"""Production mode: `check --deploy` is clean, and logs never carry secrets or payloads."""

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orgbilling.log_format import JsonFormatter

ROOT = Path(__file__).resolve().parents[1]

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SANDBOX": "false",
    "SECRET_KEY": "p" * 20 + "Xq9-rT7_vW3zY6$kL2mN8bC4dF1gH5jJ0sA",
    "ALLOWED_HOSTS": "billing.example.com",
    "APP_URL": "https://billing.example.com",
    "DATABASE_URL": "sqlite:////tmp/orgbilling-deploy-check.sqlite3",
    "SCALEKIT_ENV_URL": "https://acme.scalekit.dev",
    "SCALEKIT_CLIENT_ID": "skc_123",
    "SCALEKIT_CLIENT_SECRET": "secret",
    "SCALEKIT_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"k" * 24).decode(),
    "SCALEKIT_COOKIE_ENCRYPTION_SECRET": base64.b64encode(b"c" * 32).decode(),
    "CHARGEBEE_SITE": "acme",
    "CHARGEBEE_API_KEY": "live_key",
    "CHARGEBEE_PLAN_ITEM_PRICE_ID": "team-USD-monthly",
    "CHARGEBEE_WEBHOOK_USERNAME": "hook",
    "CHARGEBEE_WEBHOOK_PASSWORD": "hook-password",
}


def manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEKIT_", "CHARGEBEE_", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_reports_nothing_in_production_mode():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_without_a_secret_key_refuses_to_start():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = manage("check", **env)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_production_with_missing_vendor_settings_is_an_error():
    env = {**PRODUCTION_ENV, "CHARGEBEE_API_KEY": ""}
    result = manage("check", "--deploy", **env)
    assert result.returncode != 0 and "orgbilling.E003" in result.stderr


@pytest.mark.django_db
def test_request_logs_hold_no_credentials_tokens_or_bodies(client, caplog, settings):
    settings.CHARGEBEE_WEBHOOK_PASSWORD = "s3cret-pass"
    secret_body = json.dumps(
        {"id": "ev_1", "event_type": "customer_created", "content": {"customer": {"email": "cfo@acme.test"}}}
    )
    basic = base64.b64encode(b"cb-hook:s3cret-pass").decode()
    with caplog.at_level(logging.DEBUG):
        client.post(
            "/api/webhooks/scalekit?token=qs-secret",
            secret_body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Basic {basic}",
        )
        client.get("/api/session", HTTP_AUTHORIZATION="Bearer eyJhbGciOiJSUzI1NiJ9.secret-token.sig")
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any('"route": "/api/webhooks/scalekit"' in line for line in lines)
    text = "\n".join(lines)
    for leaked in ("s3cret-pass", basic, "secret-token", "cfo@acme.test", "qs-secret"):
        assert leaked not in text
    for line in lines:
        json.loads(line)  # every line is one JSON object
