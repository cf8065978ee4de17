"""System checks: warnings in DEBUG, errors otherwise, one id per problem, each with a hint (issue 11, item 5)."""

import os
import subprocess
import sys

import pytest
from django.core import checks
from django.core.checks.registry import registry
from django.core.management.base import SystemCheckError

from orgbilling.checks import check_chargebee, check_scalekit, refuse_to_serve_misconfigured
from tests.test_production import PRODUCTION_ENV, ROOT, manage


def ids(messages):
    return {m.id for m in messages}


def test_nothing_configured_is_only_warnings_in_debug(settings):
    settings.DEBUG = True
    for name in (
        "SCALEKIT_ENV_URL",
        "SCALEKIT_CLIENT_ID",
        "SCALEKIT_CLIENT_SECRET",
        "SCALEKIT_WEBHOOK_SECRET",
        "CHARGEBEE_SITE",
        "CHARGEBEE_API_KEY",
        "CHARGEBEE_API_BASE_URL",
        "CHARGEBEE_PLAN_ITEM_PRICE_ID",
        "CHARGEBEE_WEBHOOK_USERNAME",
        "CHARGEBEE_WEBHOOK_PASSWORD",
    ):
        setattr(settings, name, "")
    messages = check_scalekit() + check_chargebee()
    assert ids(messages) == {
        "orgbilling.E001",
        "orgbilling.E002",
        "orgbilling.E003",
        "orgbilling.E005",
        "orgbilling.E006",
    }
    assert all(m.level == checks.WARNING and m.hint for m in messages)


def test_same_problems_are_errors_without_debug(settings):
    settings.DEBUG = False
    settings.SCALEKIT_WEBHOOK_SECRET = "whsec_not base64!"
    settings.CHARGEBEE_API_BASE_URL = "ftp://example"
    messages = check_scalekit() + check_chargebee()
    assert {"orgbilling.E001", "orgbilling.E002", "orgbilling.E004"} <= ids(messages)
    assert all(m.level == checks.ERROR for m in messages)


def test_complete_configuration_passes(settings):
    settings.SCALEKIT_ENV_URL = "https://acme.scalekit.dev"
    settings.SCALEKIT_CLIENT_ID = "skc_1"
    settings.SCALEKIT_CLIENT_SECRET = "secret"
    assert check_scalekit() == [] and check_chargebee() == []


def test_item5_plans_setting_makes_the_plan_item_price_id_irrelevant(settings):
    settings.DEBUG = False
    settings.CHARGEBEE_PLAN_ITEM_PRICE_ID = ""
    settings.ORGBILLING_PLANS = [{"id": "team-USD-monthly"}, {"id": "scale-USD-monthly"}]
    assert check_chargebee() == []
    settings.ORGBILLING_PLANS = []  # the catalog used is empty: nothing to subscribe to
    assert ids(check_chargebee()) == {"orgbilling.E006"}
    settings.ORGBILLING_PLANS = None
    assert ids(check_chargebee()) == {"orgbilling.E006"}


def test_item5_each_problem_keeps_its_id_whatever_debug_says(settings):
    settings.CHARGEBEE_API_KEY = ""
    settings.SCALEKIT_WEBHOOK_SECRET = ""
    settings.DEBUG = True
    in_debug = {(m.id, m.level) for m in check_scalekit() + check_chargebee()}
    settings.DEBUG = False
    in_production = {(m.id, m.level) for m in check_scalekit() + check_chargebee()}
    assert {i for i, _ in in_debug} == {i for i, _ in in_production} == {
        "orgbilling.E001",
        "orgbilling.E002",
        "orgbilling.E003",
    }
    assert {level for _, level in in_debug} == {checks.WARNING}
    assert {level for _, level in in_production} == {checks.ERROR}


VENDOR_CHECKS = {"check_scalekit", "check_chargebee", "check_sign_in"}


def test_item5_checks_are_tagged_and_vendor_ones_are_deployment_checks():
    ours = [c for c in registry.get_checks(include_deployment_checks=True) if c.__module__ == "orgbilling.checks"]
    assert VENDOR_CHECKS | {"check_settings", "check_processing"} <= {c.__name__ for c in ours}
    for check in ours:
        assert "orgbilling" in check.tags and "database" not in check.tags  # none reads the database
        assert ("deploy" in check.tags) == (check.__name__ in VENDOR_CHECKS)
    # Deployment checks: run by `check --deploy` and at server start, not by migrate or collectstatic.
    assert not VENDOR_CHECKS & {c.__name__ for c in registry.get_checks(include_deployment_checks=False)}


def test_item5_wsgi_startup_refuses_a_missing_secret_with_the_checks_message(settings):
    settings.DEBUG = False
    settings.CHARGEBEE_WEBHOOK_PASSWORD = ""
    with pytest.raises(SystemCheckError, match=r"orgbilling\.E005"):
        refuse_to_serve_misconfigured()
    settings.CHARGEBEE_WEBHOOK_PASSWORD = "back"
    settings.SCALEKIT_ENV_URL, settings.SCALEKIT_CLIENT_ID, settings.SCALEKIT_CLIENT_SECRET = "https://a.dev", "c", "s"
    settings.SCALEKIT_COOKIE_ENCRYPTION_SECRET = "cookie-secret"
    refuse_to_serve_misconfigured()


WITHOUT_VENDOR_SECRETS = {
    name: value for name, value in PRODUCTION_ENV.items() if not name.startswith(("SCALEKIT_", "CHARGEBEE_"))
}


def test_item5_deploy_commands_run_without_any_vendor_setting(tmp_path):
    env = {**WITHOUT_VENDOR_SECRETS, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    for command in (["migrate", "--no-input"], ["collectstatic", "--no-input"], ["createcachetable"]):
        result = manage(*command, **env)
        assert result.returncode == 0, result.stdout + result.stderr
    result = manage("check", "--deploy", **env)  # what they skip, the deployment checks report
    assert result.returncode != 0 and "orgbilling.E003" in result.stderr


def test_item5_gunicorn_exits_at_start_when_a_secret_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEKIT_", "CHARGEBEE_", "DATABASE_URL"))}
    env.update(PRODUCTION_ENV, CHARGEBEE_API_KEY="", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    gunicorn = [sys.executable, "-m", "gunicorn", "billing_project.wsgi", "--bind", "127.0.0.1:0"]
    result = subprocess.run(gunicorn, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "orgbilling.E003" in result.stderr and "Chargebee is not configured" in result.stderr
