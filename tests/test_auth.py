"""Sign-in: token validation against a live JWKS, the SDK session cookie, and the auth routes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.test import Client
from scalekit.frameworks import django as scalekit_django
from scalekit.middleware.session_manager import DEFAULT_COOKIE_NAME

from orgbilling import conf
from orgbilling.checks import check_settings, check_sign_in
from orgbilling.models import Organization
from tests.scalekit_support import COOKIE_NAME, SigningKey, _private_key

pytestmark = pytest.mark.django_db


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token(claims: dict) -> str:
    return f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': 'key-1'})}.{_segment(claims)}."


def hmac_with_public_key(stub, claims: dict) -> str:
    """The algorithm-confusion attack: HS256 keyed with the RSA public key everyone can fetch."""
    pem = stub.key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': stub.key.kid})}.{_segment(claims)}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def session(client, **headers):
    return client.get("/api/session", **headers)


def test_bearer_token_identifies_user_and_organization(client, scalekit):
    response = session(client, **scalekit.bearer(roles=["admin", "member"]))
    assert response.status_code == 200
    assert response.json() == {"userId": "usr_1", "email": "", "organizationId": "org_1", "roles": ["admin", "member"]}


def test_organization_is_created_on_first_sight_without_calling_chargebee(client, scalekit, fake_chargebee):
    assert session(client, **scalekit.bearer(oid="org_new")).status_code == 200
    assert Organization.objects.filter(pk="org_new", chargebee_customer_id=None).exists()
    assert fake_chargebee.calls() == []


def test_keys_are_fetched_once_then_cached(client, scalekit):
    for _ in range(3):
        assert session(client, **scalekit.bearer()).status_code == 200
    assert scalekit.jwks_hits == 1


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda s: s.token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200), id="expired"),
        pytest.param(lambda s: s.token(exp=None), id="no-exp"),
        pytest.param(lambda s: s.token(iss="https://other.scalekit.dev"), id="wrong-issuer"),
        pytest.param(lambda s: s.token(aud=["skc_someone_else"]), id="wrong-audience"),
        pytest.param(lambda s: s.token(aud=["https://api.your-app.com"]), id="api-url-audience"),
        pytest.param(lambda s: unsigned_token(s.claims()), id="alg-none"),
        pytest.param(lambda s: hmac_with_public_key(s, s.claims()), id="hs256-with-public-key"),
        pytest.param(lambda s: s.token(key=SigningKey("key-1", _private_key(3))), id="forged-signature"),
        pytest.param(lambda s: s.token()[:-4] + "AAAA", id="tampered"),
        pytest.param(lambda s: "not-a-jwt", id="garbage"),
    ],
)
def test_invalid_tokens_are_refused(client, scalekit, make_token):
    response = session(client, HTTP_AUTHORIZATION=f"Bearer {make_token(scalekit)}")
    assert response.status_code == 401
    assert "userId" not in response.json()


def test_issuer_and_audience_can_be_configured(client, scalekit, settings):
    settings.ORGBILLING_TOKEN_ISSUER = "https://auth.example.com"
    settings.ORGBILLING_TOKEN_AUDIENCE = "https://api.example.com"
    good = scalekit.bearer(iss="https://auth.example.com", aud=["https://api.example.com"])
    assert session(client, **good).status_code == 200
    assert session(client, **scalekit.bearer()).status_code == 401


def test_rotated_key_is_picked_up_without_restart_at_a_limited_rate(client, scalekit, settings, clock):
    settings.ORGBILLING_JWKS_REFETCH_COOLDOWN = 1
    assert session(client, **scalekit.bearer()).status_code == 200
    old_token = scalekit.token()
    scalekit.rotate()
    # Right after a fetch an unknown kid does not trigger another one (no JWKS hammering).
    assert session(client, **scalekit.bearer()).status_code == 401
    assert scalekit.jwks_hits == 1
    clock.advance(1.1)
    assert session(client, **scalekit.bearer()).status_code == 200
    assert scalekit.jwks_hits == 2
    assert session(client, HTTP_AUTHORIZATION=f"Bearer {old_token}").status_code == 401


def test_session_cookie_signs_in_with_email_from_id_token(client, scalekit):
    scalekit.sign_in(client, email="grace@example.com")
    assert session(client).json() == {
        "userId": "usr_1",
        "email": "grace@example.com",
        "organizationId": "org_1",
        "roles": ["admin"],
    }


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-jwt", "Bearer ", "Bearer", "bearer not-a-jwt", "BEARER  "],
    ids=["bad-bearer", "empty", "no-token", "lowercase", "uppercase-empty"],
)
def test_authorization_header_never_falls_back_to_the_cookie(client, scalekit, header):
    scalekit.sign_in(client)
    assert session(client).status_code == 200
    assert session(client, HTTP_AUTHORIZATION=header).status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "", "   ", "Token abc", "Bearer-ish abc"],
    ids=["basic", "empty", "blank", "other-scheme", "not-bearer"],
)
def test_item1_basic_auth_header_keeps_cookie(client, scalekit, header):
    """A proxy's Basic Auth (or any scheme but Bearer) is no sign-in attempt: the session cookie still counts."""
    scalekit.sign_in(client)
    response = session(client, HTTP_AUTHORIZATION=header)
    assert response.status_code == 200 and response.json()["userId"] == "usr_1"
    page = client.get("/billing", HTTP_AUTHORIZATION=header)
    assert page.status_code == 200  # not a redirect back to sign-in


def test_item1_bearer_scheme_in_any_case_is_a_token(client, scalekit):
    token = scalekit.token()
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        assert session(client, HTTP_AUTHORIZATION=f"{scheme} {token}").status_code == 200


def test_session_token_is_validated_too(client, scalekit):
    """The SDK trusts its cookie until expiry; the token inside must still pass our checks."""
    scalekit.sign_in(client, aud=["skc_someone_else"])
    assert session(client).status_code == 401


def test_tampered_cookie_is_refused_and_cleared(client, scalekit):
    client.cookies[COOKIE_NAME] = scalekit.session_cookie()[:-6] + "AAAAAA"
    response = session(client)
    assert response.status_code == 401
    assert response.cookies[COOKIE_NAME].value == ""


def test_expired_session_is_refreshed_by_the_sdk(client, scalekit):
    scalekit.sign_in(client, expires_in=-60)
    response = session(client)
    assert response.status_code == 200
    assert response.json()["roles"] == ["admin", "refreshed"]  # claims of the new access token
    assert scalekit.client.refreshes == ["rt_initial"]
    assert response.cookies[COOKIE_NAME].value  # the refreshed session is stored
    assert session(client).status_code == 200 and scalekit.client.refreshes == ["rt_initial"]


def test_token_without_organization_gets_no_billing(client, scalekit):
    headers = scalekit.bearer(oid=None)
    assert session(client, **headers).json()["organizationId"] is None
    response = client.get("/api/subscription", **headers)
    assert response.status_code == 403
    assert response.json() == {"error": "Organization context required for billing"}
    scalekit.sign_in(client, oid=None)
    page = client.get("/billing")
    assert page.status_code == 403
    assert "Organization context required for billing" in page.content.decode()


def test_signed_out_requests(client, scalekit):
    assert client.get("/api/subscription").status_code == 401
    page = client.get("/billing?tab=plans")
    assert page.status_code == 302
    assert page["Location"] == "/auth/login?returnTo=%2Fbilling%3Ftab%3Dplans"


def test_sdk_client_is_built_lazily_and_never_for_webhooks_or_bearer(client, scalekit, settings, monkeypatch):
    built = []

    def refuse(**kwargs):
        built.append(kwargs)
        raise RuntimeError("ScalekitClient must not be built here")

    del settings.SCALEKIT_CLIENT
    scalekit_django.get_config.cache_clear()
    monkeypatch.setattr(scalekit_django, "ScalekitClient", refuse)
    scalekit.sign_in(client)
    client.post("/api/webhooks/scalekit", b"{}", content_type="application/json")
    client.post("/api/webhooks/chargebee", b"{}", content_type="application/json")
    client.get("/static/orgbilling/billing.css")
    assert session(client, **scalekit.bearer()).status_code == 200
    assert built == []
    assert session(client).status_code == 503  # a cookie on a billing path does reach the SDK
    assert len(built) == 1


def test_login_and_callback_set_the_session(client, scalekit):
    response = client.get("/auth/login?returnTo=/billing")
    assert response.status_code == 302
    authorize = urlsplit(response["Location"])
    assert f"{authorize.scheme}://{authorize.netloc}" == scalekit.env_url
    state = parse_qs(authorize.query)["state"][0]
    assert response.cookies["sk_oauth_state"].value == state

    callback = client.get(f"/auth/callback?code=code_1&state={state}")
    assert callback.status_code == 302 and callback["Location"] == "/billing"
    assert callback.cookies[COOKIE_NAME].value
    assert session(client).json()["email"] == "ada@example.com"


@pytest.mark.parametrize("query", ["code=code_1&state=forged", "error=access_denied", "code=code_1"])
def test_callback_refuses_forged_or_failed_logins(client, scalekit, query):
    client.get("/auth/login")
    response = client.get(f"/auth/callback?{query}")
    assert response.status_code == 302 and response["Location"] == "/auth/login"
    assert COOKIE_NAME not in response.cookies or response.cookies[COOKIE_NAME].value == ""
    assert session(client).status_code == 401


@pytest.mark.parametrize("target", ["https://evil.example/", "/\\evil.example", "//evil.example"])
def test_login_never_redirects_off_site(client, scalekit, target):
    response = client.get("/auth/login", {"returnTo": target})
    assert "sk_return_to" not in response.cookies


def test_sign_out_is_a_post_with_csrf(scalekit):
    browser = scalekit.sign_in(Client(enforce_csrf_checks=True))
    assert browser.get("/auth/logout").status_code == 405
    assert browser.post("/auth/logout").status_code == 403
    assert session(browser).status_code == 200  # still signed in
    token = browser.cookies["csrftoken"].value
    response = browser.post("/auth/logout", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert response["Location"].startswith(f"{scalekit.env_url}/oidc/logout")
    assert response.cookies[COOKIE_NAME].value == ""


def test_cookie_name_default_matches_the_sdk():
    assert conf.DEFAULTS["SCALEKIT_COOKIE_NAME"] == DEFAULT_COOKIE_NAME


def test_a_stray_cookie_without_sessions_configured_is_ignored(client, settings):
    settings.SCALEKIT_COOKIE_ENCRYPTION_SECRET = ""
    client.cookies[COOKIE_NAME] = "left-over"
    assert session(client).status_code == 401


def test_sign_in_checks(settings):
    settings.DEBUG = False
    settings.SCALEKIT_COOKIE_ENCRYPTION_SECRET = ""
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.startswith("orgbilling.middleware")]
    settings.ORGBILLING_PLANS = [{"name": "no id"}]
    settings.ORGBILLING_THROTTLE_RATE = "10 per minute"
    messages = check_sign_in() + check_settings()
    assert [m.id for m in messages] == ["orgbilling.E007", "orgbilling.E008", "orgbilling.E009", "orgbilling.E010"]
    assert all(m.hint for m in messages)
    settings.SCALEKIT_COOKIE_ENCRYPTION_SECRET = "secret"
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "orgbilling.middleware.BillingContextMiddleware"]
    settings.ORGBILLING_PLANS = None
    settings.ORGBILLING_THROTTLE_RATE = "10/minute"
    assert check_sign_in() + check_settings() == []


def test_a_verified_token_is_remembered_only_while_its_key_is_served(client, scalekit, settings, monkeypatch, clock):
    settings.ORGBILLING_JWKS_REFETCH_COOLDOWN = 0.2
    remembered = scalekit.bearer()
    assert session(client, **remembered).status_code == 200
    decodes = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    assert session(client, **remembered).status_code == 200
    assert decodes == []  # the signature was not checked again
    scalekit.rotate()
    clock.advance(0.3)
    assert session(client, **scalekit.bearer()).status_code == 200  # the new kid makes the JWKS refetch
    assert session(client, **remembered).status_code == 401  # its key is gone: remembered or not, refused
