"""Request ids, the one ERROR record of a 500, and log lines no request can forge (issue 11, items 6 and 8).

Records are collected by a handler on the root logger, where the project's
console handler sits, so what Django's own loggers keep to themselves (they
go nowhere) is not counted; each is then written by the configured formatters.
"""

from __future__ import annotations

import json
import logging
import sys

import jwt
import pytest
from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from orgbilling.log_format import JsonFormatter, PlainFormatter

pytestmark = pytest.mark.django_db

SECRETS = ("path-secret", "qs-secret", "bearer-secret", "cookie-secret", "body-secret", "header-secret")


@csrf_exempt
def boom(request: HttpRequest, token: str) -> HttpResponse:
    raise ValueError("the view broke")


urlpatterns = [path("boom/<str:token>", boom), path("", include("orgbilling.urls"))]
handler500 = "orgbilling.request_log.server_error"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def console():
    """The records that reach the root logger's handlers (the project's console)."""
    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def plain() -> PlainFormatter:
    config = django_settings.LOGGING["formatters"]["plain"]
    assert config["class"] == "orgbilling.log_format.PlainFormatter"
    return PlainFormatter(config["format"])


def written(records: list[logging.LogRecord]) -> str:
    """Every record as both configured formats would write it."""
    return "\n".join(formatter.format(r) for r in records for formatter in (plain(), JsonFormatter()))


def test_item6_every_response_carries_a_request_id(client):
    generated = client.get("/api/session")["X-Request-ID"]
    assert len(generated) == 32 and generated != client.get("/api/session")["X-Request-ID"]
    assert client.get("/api/session", HTTP_X_REQUEST_ID="edge-7f3a.91:b=")["X-Request-ID"] == "edge-7f3a.91:b="
    for malformed in ("has space", "new\nline", "x" * 129, "", "ünïcode"):
        echoed = client.get("/api/session", HTTP_X_REQUEST_ID=malformed)["X-Request-ID"]
        assert echoed != malformed and len(echoed) == 32


@pytest.mark.urls("tests.test_request_log")
def test_item6_a_500_is_one_error_record_with_id_route_type_and_traceback(console):
    browser = Client(raise_request_exception=False)
    browser.cookies["sk_session"] = "cookie-secret"
    response = browser.post(
        "/boom/path-secret?code=qs-secret",
        "body-secret",
        content_type="text/plain",
        HTTP_AUTHORIZATION="Basic bearer-secret",
        HTTP_X_CUSTOM="header-secret",
        HTTP_X_REQUEST_ID="req-42",
    )
    assert response.status_code == 500 and response["X-Request-ID"] == "req-42"
    assert "req-42" in response.content.decode()  # the 500 page shows the id, for support to quote
    errors = [r for r in console.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    error = errors[0]
    assert (error.request_id, error.route, error.exception_type) == ("req-42", "/boom/<str:token>", "ValueError")
    as_plain, as_json = plain().format(error), json.loads(JsonFormatter().format(error))
    assert "req-42" in as_plain and "/boom/<str:token>" in as_plain and "ValueError" in as_plain
    assert "Traceback" in as_plain and "the view broke" in as_plain
    assert as_json["request_id"] == "req-42" and as_json["route"] == "/boom/<str:token>"
    assert as_json["exception_type"] == "ValueError" and "Traceback" in as_json["exception"]
    text = written(console.records)
    for secret in SECRETS:
        assert secret not in text


def test_item6_500_page_is_the_projects_handler():
    from billing_project import urls

    assert urls.handler500 == "orgbilling.request_log.server_error"


def test_item8_a_newline_in_a_token_kid_cannot_forge_a_line(client, scalekit, console):
    forged = "key-1\n2026-12-01 00:00:00,000 INFO orgbilling.requests GET /billing 200 id=forged"
    token = jwt.encode(scalekit.claims(), scalekit.key.private, algorithm="RS256", headers={"kid": forged})
    assert client.get("/api/session", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    refusal = [r for r in console.records if r.name == "orgbilling.middleware"]
    assert refusal and "\n" in refusal[0].getMessage()  # the kid does reach the message
    lines = [plain().format(record) for record in console.records]
    assert all("\n" not in line for line in lines)
    assert any("\\n2026-12-01" in line for line in lines)  # written escaped, on the refusal's own line


def test_item8_an_encoded_newline_in_the_path_cannot_forge_a_line(client, console):
    client.get("/billing%0A2026-12-01%2000:00:00,000%20INFO%20orgbilling.requests%20GET%20/billing%20200")
    client.get("/api/session%0D%0AFORGED")
    assert console.records
    for record in console.records:
        assert "\n" not in plain().format(record) and "\r" not in plain().format(record)


def test_item8_plain_format_escapes_every_control_character_and_indents_tracebacks():
    value = "a\r\nb\x1b[31mc\u2028d\x00"
    record = logging.LogRecord("orgbilling", logging.INFO, __file__, 1, "value %s", (value,), None)
    assert plain().format(record).endswith("value a\\r\\nb\\x1b[31mc\\u2028d\\x00")
    try:
        raise ValueError("first\nINFO forged")
    except ValueError:
        failing = logging.LogRecord("orgbilling", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    lines = plain().format(failing).splitlines()
    assert lines[0].endswith("oops") and all(line.startswith("    ") for line in lines[1:])


def test_vendor_clients_never_log_urls_even_when_the_root_logs_debug(fake_chargebee, console):
    """Chargebee's SDK logs each request's URL and payload at DEBUG, httpx each URL at INFO: hosted page ids."""
    from orgbilling.chargebee_gateway import ChargebeeError, get_gateway

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with pytest.raises(ChargebeeError):
            get_gateway().retrieve_hosted_page("hosted-page-secret")
    finally:
        root.setLevel(level)
    assert "hosted-page-secret" not in written(console.records)
