"""orgbilling mounted under /billing-app/: by the project's URLconf, and behind a proxy (FORCE_SCRIPT_NAME).

Every link, redirect, ``returnTo``, login path and URL sent to Chargebee carries
the prefix exactly once; webhooks never build the Scalekit client nor touch
the session cookie.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import set_script_prefix

from orgbilling import provisioning
from orgbilling.models import Subscription
from sandbox.fake_chargebee import serve
from tests.billing_support import page_id
from tests.scalekit_support import COOKIE_NAME, COOKIE_SECRET, reset_process_caches

pytestmark = pytest.mark.django_db

PREFIX = "/billing-app"


@dataclass(frozen=True)
class Mount:
    path: str  # what the test client requests: the prefix itself, or nothing when a proxy strips it

    def __call__(self, route: str) -> str:
        return f"{self.path}{route}"


@pytest.fixture(params=["urlconf", "script_name"])
def mounted(request, settings):
    if request.param == "urlconf":
        settings.ROOT_URLCONF = "tests.mounted_urls"
        yield Mount(PREFIX)
    else:
        settings.FORCE_SCRIPT_NAME = PREFIX  # the proxy serves the site under /billing-app and strips it
        set_script_prefix(f"{PREFIX}/")  # as WSGIHandler does per request (the test client does not)
        yield Mount("")
        set_script_prefix("/")


def once(url: str) -> bool:
    """The URL's path starts with the prefix, and has it only once."""
    path = urlsplit(url).path
    return path.startswith(f"{PREFIX}/") and path.count(PREFIX) == 1


def test_signed_out_page_sends_to_sign_in_with_a_prefixed_return(client, scalekit, mounted):
    response = client.get(mounted("/billing"))
    assert response.status_code == 302
    assert response["Location"] == f"{PREFIX}/auth/login?returnTo=%2Fbilling-app%2Fbilling"


def test_every_form_and_link_on_the_billing_page_carries_the_prefix_once(client, scalekit, mounted):
    organization = provisioning.Organization.objects.create(id="org_1", chargebee_customer_id="org_1")
    Subscription.objects.create(organization=organization, status="active", chargebee_subscription_id="cb_1")
    scalekit.sign_in(client)
    page = client.get(mounted("/billing")).content.decode()
    targets = re.findall(r'(?:action|href)="([^"]*)"', page)
    ours = [target for target in targets if "/static/" not in target]
    assert {"/billing-app/billing/change/preview", "/billing-app/billing/portal", "/billing-app/auth/logout"} <= set(
        ours
    )
    assert all(once(target) for target in ours), ours


def test_sign_in_round_trip_returns_under_the_prefix(client, scalekit, mounted, settings):
    settings.SCALEKIT_REDIRECT_URI = f"http://testserver{PREFIX}/auth/callback"
    login = client.get(mounted("/auth/login"), {"returnTo": f"{PREFIX}/billing"})
    authorize = parse_qs(urlsplit(login["Location"]).query)
    assert authorize["redirect_uri"] == [f"http://testserver{PREFIX}/auth/callback"]
    callback = client.get(mounted("/auth/callback"), {"code": "code_1", "state": authorize["state"][0]})
    assert callback["Location"] == f"{PREFIX}/billing"
    # Without a returnTo the SDK's own default (SCALEKIT_POST_LOGIN_REDIRECT) is prefixed too; a
    # refused callback goes back to the prefixed login path (SCALEKIT_LOGIN_PATH).
    login = client.get(mounted("/auth/login"))
    state = parse_qs(urlsplit(login["Location"]).query)["state"][0]
    assert client.get(mounted("/auth/callback"), {"code": "c", "state": state})["Location"] == f"{PREFIX}/billing"
    assert client.get(mounted("/auth/callback"), {"error": "denied"})["Location"] == f"{PREFIX}/auth/login"


@pytest.mark.parametrize("app_url", ["http://testserver", f"http://testserver{PREFIX}"])
def test_urls_sent_to_chargebee_carry_the_prefix_once(client, scalekit, fake_chargebee, mounted, settings, app_url):
    settings.APP_URL = app_url
    provisioning.ensure_customer("org_1", "Acme")
    created = client.post(
        mounted("/api/subscription/create"), json.dumps({"seats": 2}), "application/json", **scalekit.bearer()
    )
    assert created.status_code == 200, created.content
    [page] = fake_chargebee.calls("POST", "/hosted_pages/checkout_new_for_items")
    subscription_id = created.json()["subscriptionId"]
    assert page.params["redirect_url"] == (
        f"http://testserver{PREFIX}/api/subscription/success?subscriptionId={subscription_id}"
    )
    assert page.params["cancel_url"] == f"http://testserver{PREFIX}/billing"

    hosted_page = page_id(created.json()["url"])
    fake_chargebee.complete_hosted_page(hosted_page)
    scalekit.sign_in(client)
    back = client.get(mounted("/api/subscription/success"), {"subscriptionId": subscription_id, "id": hosted_page})
    assert back["Location"] == f"{PREFIX}/billing?success=1"

    portal = client.post(mounted("/billing/portal"))
    assert portal.status_code == 303
    [session] = fake_chargebee.calls("POST", "/portal_sessions")
    assert session.params["redirect_url"] == f"http://testserver{PREFIX}/billing/portal/return"


@pytest.fixture
def token_endpoint():
    """A Scalekit environment that only counts requests: building the SDK's client calls it."""
    seen: list[str] = []

    def app(environ, start_response):
        seen.append(environ["PATH_INFO"])
        body = json.dumps({"access_token": "t", "token_type": "Bearer", "expires_in": 300}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    server = serve(app)
    yield f"http://127.0.0.1:{server.port}", seen
    server.stop()


def test_webhooks_never_build_the_scalekit_client_nor_touch_the_session_cookie(
    client, settings, mounted, post_scalekit, token_endpoint
):
    env_url, seen = token_endpoint
    settings.SCALEKIT_ENV_URL = env_url
    settings.SCALEKIT_CLIENT_ID, settings.SCALEKIT_CLIENT_SECRET = "skc_1", "secret"
    settings.SCALEKIT_COOKIE_ENCRYPTION_SECRET = COOKIE_SECRET
    reset_process_caches()
    client.cookies[COOKIE_NAME] = "a-cookie-the-sdk-would-read-and-clear"
    for response in (
        post_scalekit(b"{}", path=mounted("/api/webhooks/scalekit")),
        client.post(mounted("/api/webhooks/chargebee"), b"{}", "application/json"),
    ):
        assert response.status_code in (200, 400, 401), response.content
        assert not response.cookies, response.cookies
    assert seen == []
    # The same cookie on a page does reach the SDK (which builds its client): the check above can fail.
    client.get(mounted("/billing"))
    assert seen
    reset_process_caches()
