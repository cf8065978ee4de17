"""The server-rendered billing pages: content, forms with CSRF, checkout round trip, portal, gating."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from django.http import HttpResponse
from django.template import Context, Template
from django.test import Client, RequestFactory

from orgbilling import chargebee_gateway, provisioning
from orgbilling.chargebee_gateway import ChargebeeError
from orgbilling.decorators import subscription_required
from orgbilling.models import Organization, Subscription
from tests.billing_support import context_for, page_id

pytestmark = pytest.mark.django_db

FORMS = ("/billing/subscribe", "/billing/change", "/billing/portal")


@pytest.fixture
def browser(scalekit):
    """A browser signed in as an admin of org_1, with CSRF enforced as in production."""
    return scalekit.sign_in(Client(enforce_csrf_checks=True))


def csrf(browser) -> dict:
    browser.get("/billing")
    return {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value}


def active_subscription(organization_id: str = "org_1", **fields) -> Subscription:
    organization = Organization.objects.get_or_create(id=organization_id)[0]
    Organization.objects.filter(pk=organization_id).update(display_name="Acme", chargebee_customer_id=organization_id)
    values = {
        "status": "active",
        "plan_id": "team-plan-USD-monthly",
        "seats": 12,
        "chargebee_subscription_id": f"cb_{organization_id}",
        "current_period_end": datetime(2031, 3, 14, tzinfo=UTC),
        **fields,
    }
    return Subscription.objects.create(organization=organization, **values)


def test_new_organization_sees_the_catalog_and_a_subscribe_form(browser):
    page = browser.get("/billing")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Billing for org_1" in html and "has no active subscription" in html
    assert 'action="/billing/subscribe"' in html and 'name="csrfmiddlewaretoken"' in html
    assert 'name="seats"' in html and 'min="1"' in html and 'max="1000"' in html
    assert "Team" in html and "14-day free trial" in html and "$15.00" in html  # the mirrored item price
    assert 'action="/auth/logout"' in html and "orgbilling/billing.css" in html
    assert "<script" not in html and 'action="/billing/change"' not in html


def test_subscribed_organization_sees_its_subscription(browser):
    active_subscription(cancel_at_period_end=True, cancelled_at=datetime(2031, 3, 14, tzinfo=UTC))
    html = browser.get("/billing").content.decode()
    assert "Billing for Acme" in html
    assert "Team" in html and "Active" in html and "12" in html and "$15.00" in html
    assert "cancels on" in html and "March 14, 2031" in html
    assert 'action="/billing/change/preview"' in html and 'action="/billing/portal"' in html
    assert 'action="/billing/subscribe"' not in html


def test_members_see_billing_read_only(scalekit):
    active_subscription()
    member = scalekit.sign_in(Client(), roles=["member"])
    html = member.get("/billing").content.decode()
    assert "Only billing managers" in html and "Active" in html
    assert not any(f'action="{form}"' in html for form in FORMS)
    assert member.post("/billing/portal").status_code == 403


@pytest.mark.parametrize("path", [*FORMS, "/auth/logout"])
def test_every_form_needs_its_csrf_token(browser, fake_chargebee, path):
    active_subscription()
    assert browser.post(path, {"seats": "3"}).status_code == 403
    assert fake_chargebee.calls() == []


def test_subscribe_and_come_back_subscribed(browser, fake_chargebee):
    response = browser.post("/billing/subscribe", {**csrf(browser), "seats": "4"})
    assert response.status_code == 303
    hosted_url = response["Location"]
    assert "/pages/v3/" in hosted_url
    fake_chargebee.complete_hosted_page(page_id(hosted_url))
    [page_call] = fake_chargebee.calls("POST", "/hosted_pages/checkout_new_for_items")
    back = urlsplit(page_call.params["redirect_url"])
    landing = browser.get(f"{back.path}?{back.query}&id={page_id(hosted_url)}&state=succeeded")
    assert landing.status_code == 302 and landing["Location"] == "/billing?success=1"
    html = browser.get(landing["Location"]).content.decode()
    assert "Your subscription is set up" in html and "In Trial" in html and "4" in html


def test_success_never_leaves_the_site(browser, fake_chargebee):
    hosted = browser.post("/billing/subscribe", {**csrf(browser)})["Location"]
    subscription_id = Subscription.objects.get().pk
    query = f"subscriptionId={subscription_id}&id={page_id(hosted)}&state=succeeded"
    unfinished = browser.get(f"/api/subscription/success?{query}&returnTo=https://evil.example&next=//evil.example")
    assert unfinished.status_code == 302 and unfinished["Location"] == "/billing"
    assert "not completed" in browser.get("/billing").content.decode()
    unknown = browser.get(f"/api/subscription/success?subscriptionId={subscription_id}&id=https://evil.example")
    assert unknown.status_code == 404


def test_success_with_an_unrecorded_page_is_refused_without_a_chargebee_call(client, fake_chargebee):
    response = client.get("/api/subscription/success?subscriptionId=sub_1&id=page_1")
    assert response.status_code == 404 and fake_chargebee.calls() == []


def test_change_seats_form(browser, fake_chargebee):
    provisioning.ensure_customer("org_1")
    sub = fake_chargebee.create_subscription("org_1", "team-plan-USD-monthly", 2)
    row = active_subscription(chargebee_subscription_id=sub["id"], seats=2)
    response = browser.post("/billing/change", {**csrf(browser), "subscription": row.pk, "seats": "9"})
    assert response.status_code == 303
    [call] = fake_chargebee.calls("POST", "/hosted_pages/checkout_existing_for_items")
    assert call.params["subscription[id]"] == sub["id"]


def test_portal_round_trip_shows_a_cancellation_at_once(browser, fake_chargebee):
    provisioning.ensure_customer("org_1")
    sub = fake_chargebee.create_subscription("org_1", "team-plan-USD-monthly", 2)
    active_subscription(chargebee_subscription_id=sub["id"], seats=2)
    response = browser.post("/billing/portal", csrf(browser))
    assert response.status_code == 303 and "/portal/v2/access/" in response["Location"]
    fake_chargebee.cancel_subscription(sub["id"], end_of_term=True)  # what the user did in the portal
    back = browser.get("/billing/portal/return")
    assert back.status_code == 302 and back["Location"] == "/billing"
    html = browser.get("/billing").content.decode()
    assert "up to date" in html and "cancels on" in html
    assert len(fake_chargebee.calls("GET", "/subscriptions")) == 1


def test_invalid_seats_are_shown_on_the_page(browser, fake_chargebee):
    response = browser.post("/billing/subscribe", {**csrf(browser), "seats": "0"})
    assert response.status_code == 400
    assert "Seats must be between 1 and 1000" in response.content.decode()
    assert fake_chargebee.calls() == []


def test_vendor_errors_are_rendered(browser, fake_chargebee, settings):
    settings.CHARGEBEE_MAX_RETRIES = 0
    fake_chargebee.fail_next(1, status=503, path="/customers")
    response = browser.post("/billing/subscribe", csrf(browser))
    assert response.status_code == 502
    assert "Chargebee is having trouble" in response.content.decode()


def test_missing_payment_gateway_is_explained(browser, fake_chargebee, monkeypatch):
    def refuse(self, **kwargs):
        raise ChargebeeError("No applicable gateway", api_error_code="no_applicable_gateway", http_status=400)

    monkeypatch.setattr(chargebee_gateway.ChargebeeGateway, "checkout_new_for_items", refuse)
    response = browser.post("/billing/subscribe", csrf(browser))
    assert response.status_code == 502
    assert "a payment gateway must be configured in Chargebee" in response.content.decode()


def test_throttled_forms_answer_429_with_retry_after(browser, fake_chargebee, settings):
    settings.ORGBILLING_THROTTLE_RATE = "2/day"  # a fixed window: no boundary within the test
    token = csrf(browser)
    assert [browser.post("/billing/subscribe", token).status_code for _ in range(2)] == [303, 303]
    response = browser.post("/billing/subscribe", token)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 86_400
    assert "Too many billing requests" in response.content.decode()
    assert len(fake_chargebee.calls("POST", "/hosted_pages/*")) == 2


def test_templates_can_be_overridden_by_the_project(browser, settings, tmp_path):
    (tmp_path / "orgbilling").mkdir()
    (tmp_path / "orgbilling" / "billing.html").write_text("Our own billing page for {{ organization }}")
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [tmp_path]
    settings.TEMPLATES = templates
    assert browser.get("/billing").content.decode() == "Our own billing page for org_1"


def view(request) -> HttpResponse:
    return HttpResponse("feature")


@pytest.mark.parametrize(
    ("decorator", "statuses"),
    [(subscription_required, (302, 302, 200)), (subscription_required(api=True), (401, 402, 200))],
    ids=["page", "api"],
)
def test_subscription_required(decorator, statuses):
    gated = decorator(view)
    request = RequestFactory().get("/feature")
    request.billing = None
    signed_out = gated(request)
    request.billing = context_for()
    unsubscribed = gated(request)
    active_subscription()
    assert (signed_out.status_code, unsubscribed.status_code, gated(request).status_code) == statuses
    if statuses[0] == 302:
        assert signed_out["Location"].startswith("/auth/login") and unsubscribed["Location"] == "/billing"


def test_subscribed_template_filter():
    template = Template('{% load orgbilling_tags %}{{ request|subscribed }} {{ request|subscribed:"other-plan" }}')
    request = RequestFactory().get("/")
    request.billing = context_for()
    assert template.render(Context({"request": request})) == "False False"
    active_subscription()
    assert template.render(Context({"request": request})) == "True False"
    request.billing = None
    assert template.render(Context({"request": request})) == "False False"
