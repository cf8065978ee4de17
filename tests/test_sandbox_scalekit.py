"""The fake Scalekit, driven by the real Scalekit SDK and PyJWT over real HTTP.

Its point is that the app's sign-in code cannot tell it from Scalekit, so the
SDK does the client-credentials call, the code exchange, the refresh and the
logout URL, and tokens are checked with PyJWT's JWKS client as orgbilling does.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from scalekit import ScalekitClient
from scalekit.common.scalekit import AuthorizationUrlOptions, CodeAuthenticationOptions, LogoutUrlOptions

from orgbilling import scalekit_auth
from sandbox import runtime
from tests.sandbox_support import sandbox, served_app  # noqa: F401  (fixtures)

ADA, ACME = "usr_1", "org_1"


@pytest.fixture
def directory(served_app):  # noqa: F811
    directory = runtime.directory()
    directory.create_organization("Acme", org_id=ACME)
    directory.save_user(ADA, "ada@acme.test", "Ada", "Lovelace", {ACME: "admin"})
    return directory


@pytest.fixture
def sdk(settings, directory):
    return ScalekitClient(settings.SCALEKIT_ENV_URL, settings.SCALEKIT_CLIENT_ID, settings.SCALEKIT_CLIENT_SECRET)


def sign_in(client, sdk, settings, role="admin", scopes=("openid", "profile", "email", "offline_access")):
    """Open the SDK's authorization URL, pick Ada in Acme, and return the code and state sent back."""
    options = AuthorizationUrlOptions()
    options.scopes, options.state = list(scopes), "st-123"
    url = urlsplit(sdk.get_authorization_url(settings.SCALEKIT_REDIRECT_URI, options))
    params = {name: values[0] for name, values in parse_qs(url.query).items()}
    page = client.get(url.path, params)
    assert page.status_code == 200, page.content.decode()[-600:]
    assert b"Sign in as Ada Lovelace (admin of Acme)" in page.content
    answer = client.post(url.path, {**params, "user_id": ADA, "organization_id": ACME, "role": role})
    assert answer.status_code == 302
    location = urlsplit(answer["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == settings.SCALEKIT_REDIRECT_URI
    back = parse_qs(location.query)
    return back["code"][0], back["state"][0]


def test_the_sdk_authenticates_with_client_credentials_and_refuses_a_wrong_secret(settings, sdk):
    assert sdk.core_client.access_token
    claims = jwt.decode(sdk.core_client.access_token, options={"verify_signature": False})
    assert claims["client_id"] == settings.SCALEKIT_CLIENT_ID

    with pytest.raises(Exception, match="(?i)unauthori|invalid_client|401"):
        ScalekitClient(settings.SCALEKIT_ENV_URL, settings.SCALEKIT_CLIENT_ID, "wrong")


def test_code_exchange_gives_tokens_the_sdk_and_pyjwt_accept(client, settings, sdk):
    code, state = sign_in(client, sdk, settings)
    assert state == "st-123"

    result = sdk.authenticate_with_code(code, settings.SCALEKIT_REDIRECT_URI, CodeAuthenticationOptions())

    assert result["user"]["email"] == "ada@acme.test"
    assert result["organization_id"] == ACME
    access = sdk.validate_access_token_and_get_claims(result["access_token"])
    for claim in ("sub", "oid", "roles", "permissions", "iss", "aud", "exp", "iat", "nbf", "jti", "sid", "client_id"):
        assert claim in access
    assert (access["sub"], access["oid"], access["roles"]) == (ADA, ACME, ["admin"])
    assert access["iss"] == settings.SCALEKIT_ENV_URL
    assert access["aud"] == [settings.SCALEKIT_CLIENT_ID]
    assert "email" not in access  # as on Scalekit: only the ID token carries it

    keys = jwt.PyJWKClient(f"{settings.SCALEKIT_ENV_URL}/keys")
    signing_key = keys.get_signing_key_from_jwt(result["id_token"])
    id_claims = jwt.decode(
        result["id_token"],
        signing_key.key,
        algorithms=["RS256"],
        audience=settings.SCALEKIT_CLIENT_ID,
        issuer=settings.SCALEKIT_ENV_URL,
    )
    assert (id_claims["email"], id_claims["name"], id_claims["sid"]) == ("ada@acme.test", "Ada Lovelace", access["sid"])
    # orgbilling's own validation (issuer, audience, JWKS by kid) takes it too.
    assert scalekit_auth.validate_access_token(result["access_token"])["oid"] == ACME


def test_a_code_works_once_and_only_for_its_redirect_uri(client, settings, sdk):
    code, _ = sign_in(client, sdk, settings)
    with pytest.raises(Exception, match="invalid_grant"):
        sdk.authenticate_with_code(code, "http://127.0.0.1:1/elsewhere", CodeAuthenticationOptions())
    with pytest.raises(Exception, match="invalid_grant"):  # the failed attempt used it up
        sdk.authenticate_with_code(code, settings.SCALEKIT_REDIRECT_URI, CodeAuthenticationOptions())


def test_refresh_rotates_the_refresh_token(client, settings, sdk):
    code, _ = sign_in(client, sdk, settings, role="member")
    first = sdk.authenticate_with_code(code, settings.SCALEKIT_REDIRECT_URI, CodeAuthenticationOptions())

    refreshed = sdk.refresh_access_token(first["refresh_token"])

    assert refreshed["refresh_token"] != first["refresh_token"]
    claims = sdk.validate_access_token_and_get_claims(refreshed["access_token"])
    assert (claims["roles"], claims["permissions"]) == (["member"], ["billing:read"])
    with pytest.raises(Exception, match="invalid_grant"):
        sdk.refresh_access_token(first["refresh_token"])


def test_no_refresh_token_without_offline_access(client, settings, sdk):
    code, _ = sign_in(client, sdk, settings, scopes=("openid", "profile", "email"))
    assert (
        sdk.authenticate_with_code(code, settings.SCALEKIT_REDIRECT_URI, CodeAuthenticationOptions())["refresh_token"]
        is None
    )


def test_logout_ends_the_session_and_returns_to_the_app(client, settings, sdk):
    code, _ = sign_in(client, sdk, settings)
    tokens = sdk.authenticate_with_code(code, settings.SCALEKIT_REDIRECT_URI, CodeAuthenticationOptions())
    options = LogoutUrlOptions()
    options.id_token_hint, options.post_logout_redirect_uri = tokens["id_token"], f"{settings.APP_URL}/billing"

    answer = client.get(sdk.get_logout_url(options).removeprefix(settings.APP_URL))

    assert (answer.status_code, answer["Location"]) == (302, f"{settings.APP_URL}/billing")
    with pytest.raises(Exception, match="invalid_grant"):
        sdk.refresh_access_token(tokens["refresh_token"])


def test_authorize_refuses_unknown_clients_and_unregistered_redirects(client, sandbox):  # noqa: F811
    base = {"response_type": "code", "redirect_uri": "http://testserver/auth/callback", "state": "s"}
    unknown = client.get("/sandbox/scalekit/oauth/authorize", {**base, "client_id": "skc_other"})
    assert unknown.status_code == 400
    elsewhere = {**base, "client_id": sandbox.SCALEKIT_CLIENT_ID, "redirect_uri": "https://evil.example/cb"}
    assert client.get("/sandbox/scalekit/oauth/authorize", elsewhere).status_code == 400
    logout = client.get("/sandbox/scalekit/oidc/logout", {"post_logout_redirect_uri": "https://evil.example/"})
    assert logout.status_code == 400


def test_jwks_names_the_key_tokens_are_signed_with(client, sandbox):  # noqa: F811
    jwks = client.get("/sandbox/scalekit/keys").json()
    token = runtime.issuer().client_token()
    assert [key["kid"] for key in jwks["keys"]] == [jwt.get_unverified_header(token)["kid"]]
    assert jwks["keys"][0]["alg"] == "RS256"
