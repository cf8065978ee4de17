"""System checks: warnings in DEBUG, errors otherwise, each with an id and a hint."""

from django.core import checks

from orgbilling.checks import check_chargebee, check_scalekit


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
        "orgbilling.W001",
        "orgbilling.W002",
        "orgbilling.W003",
        "orgbilling.W005",
        "orgbilling.W006",
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
