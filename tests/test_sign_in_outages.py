"""Scalekit unreachable: sign-in answers 503 with Retry-After, never a 500 nor a sign-in loop (issue 11, items 2-3).

The SDK's client is built for real (its constructor POSTs to ``/oauth/token``
on the stand-in Scalekit, which answers 503); the JWKS is served over real HTTP.
"""

from __future__ import annotations

import threading

import pytest
from django.test import Client

from orgbilling import scalekit_auth
from tests.scalekit_support import SigningKey, _private_key

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}


@pytest.fixture
def scalekit_down(scalekit, settings, monkeypatch):
    """Scalekit's API refuses the SDK's token request; time is ours to move."""
    del settings.SCALEKIT_CLIENT  # the real SDK client, built against the stand-in
    now = [1000.0]
    monkeypatch.setattr(scalekit_auth, "clock", lambda: now[0])
    scalekit.now = now
    return scalekit


def with_cookie(cookie: str) -> Client:
    browser = Client()
    browser.cookies["sk_session"] = cookie
    return browser


def assert_unavailable_json(response) -> None:
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) >= 1
    assert response.json() == {"error": "Sign-in is temporarily unavailable. Try again shortly."}


def assert_unavailable_page(response) -> None:
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) >= 1
    assert "Sign-in is temporarily unavailable" in response.content.decode()


def test_item2_sdk_build_failure_is_a_503_for_cookie_requests(client, scalekit_down):
    client.cookies["sk_session"] = "garbage, not even a sealed cookie"
    assert_unavailable_json(client.get("/api/session"))
    assert_unavailable_page(client.get("/billing", **HTML))
    scalekit_down.sign_in(client)
    assert_unavailable_page(client.get("/billing", **HTML))  # not sent to sign-in: that would loop
    assert_unavailable_page(client.get("/auth/login", **HTML))
    assert_unavailable_json(client.get("/api/subscription"))
    assert scalekit_down.token_hits == 1  # one build attempt, then the failure is remembered


def test_item2_bearer_requests_and_webhooks_are_unaffected(client, scalekit_down):
    scalekit_down.sign_in(client)
    assert client.get("/api/session").status_code == 503
    assert Client().get("/api/session", **scalekit_down.bearer()).status_code == 200
    webhook = Client().post("/api/webhooks/scalekit", b"{}", content_type="application/json")
    assert webhook.status_code == 401  # its own answer (no signature), not sign-in's
    assert scalekit_down.token_hits == 1


def test_item2_at_most_one_build_attempt_per_retry_period_under_load(client, scalekit_down, settings):
    settings.ORGBILLING_SIGN_IN_RETRY_SECONDS = 30
    cookie = scalekit_down.session_cookie()
    statuses: list[int] = []

    def browse() -> None:
        browser = with_cookie(cookie)
        for _ in range(5):
            statuses.append(browser.get("/api/session").status_code)

    threads = [threading.Thread(target=browse) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [503] * 40
    assert scalekit_down.token_hits == 1
    scalekit_down.now[0] += 29
    assert with_cookie(cookie).get("/api/session").status_code == 503
    assert scalekit_down.token_hits == 1
    scalekit_down.now[0] += 2  # 31 s after the failure: one more try
    assert with_cookie(cookie).get("/api/session").status_code == 503
    assert scalekit_down.token_hits == 2


def test_item2_retry_period_is_configurable_and_recovery_signs_in(client, scalekit_down, settings):
    settings.ORGBILLING_SIGN_IN_RETRY_SECONDS = 5
    scalekit_down.sign_in(client)
    response = client.get("/api/session")
    assert_unavailable_json(response)
    assert response["Retry-After"] == "5"
    scalekit_down.now[0] += 6
    settings.SCALEKIT_CLIENT = scalekit_down.client  # Scalekit is back
    assert client.get("/api/session").status_code == 200


@pytest.fixture(params=["html", "down", "empty"])
def jwks_fault(request, scalekit):
    """Turn one kind of JWKS outage on: a 200 HTML error page, a 503, or a JWKS without keys."""
    attribute = {"html": "jwks_html", "down": "jwks_down", "empty": "jwks_empty"}[request.param]
    return lambda on=True: setattr(scalekit, attribute, on)


def test_item3_jwks_outage_with_no_key_served_yet_is_a_503(client, scalekit, jwks_fault):
    jwks_fault()
    assert_unavailable_json(client.get("/api/session", **scalekit.bearer()))
    scalekit.sign_in(client)
    assert_unavailable_page(client.get("/billing", **HTML))
    assert_unavailable_json(client.get("/api/session"))
    jwks_fault(on=False)
    assert client.get("/api/session").status_code == 200


def test_item3_a_token_whose_key_was_served_is_still_verified(client, scalekit, settings, jwks_fault):
    settings.ORGBILLING_JWKS_CACHE_SECONDS = 0.001  # the cached JWKS expires at once: every request refetches
    assert client.get("/api/session", **scalekit.bearer()).status_code == 200
    jwks_fault()
    fresh = scalekit.bearer(jti="tkn_never_seen")  # not a remembered token: its signature is checked again
    assert client.get("/api/session", **fresh).status_code == 200
    assert client.get("/api/session", **scalekit.bearer(aud=["someone-else"])).status_code == 401
    scalekit.sign_in(client)
    assert client.get("/billing", **HTML).status_code == 200
    # A key never served cannot be checked: 503, not 401 (the token may be fine) nor 500.
    scalekit.rotate()
    assert_unavailable_json(Client().get("/api/session", **scalekit.bearer()))


def test_item3_unknown_key_in_a_healthy_jwks_is_still_a_401(client, scalekit):
    assert client.get("/api/session", **scalekit.bearer()).status_code == 200
    stranger = scalekit.token(key=SigningKey("key-unknown", _private_key(3)))
    assert client.get("/api/session", HTTP_AUTHORIZATION=f"Bearer {stranger}").status_code == 401


def test_item3_webhooks_never_touch_the_jwks(client, scalekit, jwks_fault):
    jwks_fault()
    response = client.post("/api/webhooks/scalekit", b"{}", content_type="application/json")
    assert response.status_code == 401 and scalekit.jwks_hits == 0  # the signature check's answer
