"""Previewed changes over HTTP: the JSON API (/api/subscription/preview, /change) and the billing pages."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import timezone

from orgbilling.models import ChangePreview, Organization, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(change_fake):
    return change_fake


@pytest.fixture
def row(change_row):
    return change_row


@pytest.fixture
def api(scalekit):
    """POST JSON with a billing manager's Bearer token."""
    headers = scalekit.bearer()

    def post(path: str, body: dict | bytes, **overrides) -> dict:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Client().post(
            path, payload, content_type="application/json", **(scalekit.bearer(**overrides) if overrides else headers)
        )

    return post


@pytest.fixture
def browser(scalekit):
    return scalekit.sign_in(Client(enforce_csrf_checks=True))


def csrf(browser) -> dict:
    browser.get("/billing")
    return {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value}


def test_api_preview_answers_amounts_and_their_formatted_strings(api, fake, row):
    response = api("/api/subscription/preview", {"seats": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["previewId"].startswith("chp_")
    assert {key: body[key] for key in ("currency", "amountDueNow", "credits", "nextAmount", "takesEffect")} == {
        "currency": "USD",
        "amountDueNow": 1000,
        "credits": 0,
        "nextAmount": 5000,
        "takesEffect": "now",
    }
    assert (body["amountDueNowFormatted"], body["nextAmountFormatted"]) == ("$10.00", "$50.00")
    assert body["nextBillingAt"].startswith("2026-05-01")
    assert body["lines"][0]["amountFormatted"] == "$10.00" and body["lines"][0]["quantity"] == 2
    assert [call.path for call in fake.calls()] == ["/estimates/update_subscription_for_items"]


def test_api_change_applies_once_and_shows_the_result(api, fake, row):
    preview_id = api("/api/subscription/preview", {"seats": 5}).json()["previewId"]
    fake.reset_calls()
    first = api("/api/subscription/change", {"previewId": preview_id})
    assert first.status_code == 200
    assert first.json()["outcome"] == "applied" and first.json()["subscription"]["seats"] == 5
    again = api("/api/subscription/change", {"previewId": preview_id})
    assert again.status_code == 200 and again.json()["outcome"] == "applied"
    assert [call.path for call in fake.calls()] == ["/subscriptions/cb_sub_1/update_for_items"]


def test_api_change_of_an_expired_preview_is_409_with_a_fresh_one(api, fake, row):
    preview_id = api("/api/subscription/preview", {"seats": 5}).json()["previewId"]
    ChangePreview.objects.filter(pk=preview_id).update(expires_at="2000-01-01T00:00:00Z")
    response = api("/api/subscription/change", {"previewId": preview_id})
    assert response.status_code == 409
    assert response.json()["preview"]["previewId"] != preview_id and "expired" in response.json()["error"]
    assert Subscription.objects.get(pk=row.pk).seats == 3


def test_api_declined_change_is_402_with_the_subscription_as_chargebee_has_it(api, fake, row):
    preview_id = api("/api/subscription/preview", {"seats": 5}).json()["previewId"]
    fake.decline_next_change()
    response = api("/api/subscription/change", {"previewId": preview_id})
    assert response.status_code == 402
    body = response.json()
    assert body["outcome"] == "declined" and body["changed"] is False and body["subscription"]["seats"] == 3
    assert "nothing was changed" in body["error"]


def test_api_hosted_fallback_answers_the_page(api, fake, row):
    from orgbilling.models import BillingProfile

    BillingProfile.objects.filter(organization_id="org_1").update(card_status="no_card")
    preview_id = api("/api/subscription/preview", {"seats": 5}).json()["previewId"]
    body = api("/api/subscription/change", {"previewId": preview_id}).json()
    assert body["outcome"] == "hosted" and "/pages/v3/" in body["url"]


def test_api_refusals(api, fake, row):
    assert api("/api/subscription/preview", {"seats": 5}, roles=["member"]).status_code == 403
    assert api("/api/subscription/preview", b"{not json").status_code == 400
    assert api("/api/subscription/preview", b"[" * 65 + b"]" * 65).status_code == 400
    assert api("/api/subscription/preview", {"seats": "many"}).status_code == 400
    assert api("/api/subscription/change", {"previewId": "chp_nope"}).status_code == 404
    assert api("/api/subscription/change", {"previewId": ["x"]}).status_code == 404
    assert fake.calls() == []
    assert Client().post("/api/subscription/preview", "{}", content_type="application/json").status_code == 401


def test_api_preview_counts_once_against_the_throttle_and_confirm_not_at_all(api, fake, row, settings):
    settings.ORGBILLING_THROTTLE_RATE = "1/day"
    preview_id = api("/api/subscription/preview", {"seats": 5}).json()["previewId"]
    assert api("/api/subscription/change", {"previewId": preview_id}).status_code == 200
    assert api("/api/subscription/preview", {"seats": 6}).status_code == 429


def members_counted(used: int = 1) -> None:
    """Scalekit's member count is known (the seat floor reads it instead of asking the stub)."""
    Organization.objects.filter(pk="org_1").update(seats_used=used, seats_pending=0, seats_counted_at=timezone.now())


def test_api_undo_scheduled_change(api, fake, row):
    members_counted()
    preview_id = api("/api/subscription/preview", {"seats": 2}).json()["previewId"]
    body = api("/api/subscription/change", {"previewId": preview_id}).json()
    assert body["outcome"] == "scheduled" and body["subscription"]["scheduledChange"]["seats"] == 2
    undone = api("/api/subscription/scheduled-change/remove", {})
    assert undone.status_code == 200 and undone.json()["subscription"]["hasScheduledChanges"] is False
    assert api("/api/subscription/scheduled-change/remove", {}).status_code == 409


def test_pages_preview_then_confirm_an_increase(browser, fake, row):
    html = browser.get("/billing").content.decode()
    assert 'action="/billing/change/preview"' in html
    response = browser.post("/billing/change/preview", {**csrf(browser), "seats": "5"})
    assert response.status_code == 303
    fake.reset_calls()
    page = browser.get(response["Location"])
    assert fake.calls() == []  # the preview page reads the local table only
    html = page.content.decode()
    assert "Charged now" in html and "$10.00" in html and "Next renewal" in html and "$50.00" in html
    assert 'action="/billing/change/confirm"' in html and 'name="csrfmiddlewaretoken"' in html
    preview_id = ChangePreview.objects.get().pk
    done = browser.post("/billing/change/confirm", {**csrf(browser), "preview": preview_id})
    assert done.status_code == 303 and done["Location"] == "/billing"
    html = browser.get("/billing").content.decode()
    assert "Done: Team with 5 seats; $10.00 was charged." in html
    assert Subscription.objects.get(pk=row.pk).seats == 5


def test_pages_schedule_a_decrease_and_undo_it(browser, fake, row):
    members_counted()
    response = browser.post("/billing/change/preview", {**csrf(browser), "seats": "2"})
    html = browser.get(response["Location"]).content.decode()
    assert "Takes effect" in html and "May 1, 2026" in html
    browser.post("/billing/change/confirm", {**csrf(browser), "preview": ChangePreview.objects.get().pk})
    html = browser.get("/billing").content.decode()
    assert "Scheduled: Team with 2 seats from May 1, 2026." in html
    assert "A change to 2 seats is scheduled" in html and "Undo scheduled change" in html
    undone = browser.post("/billing/change/undo", csrf(browser))
    assert undone.status_code == 303
    html = browser.get("/billing").content.decode()
    assert "The scheduled change was undone." in html and "Undo scheduled change" not in html


def test_pages_show_the_fresh_preview_when_the_old_one_expired(browser, fake, row):
    response = browser.post("/billing/change/preview", {**csrf(browser), "seats": "5"})
    old = ChangePreview.objects.get()
    ChangePreview.objects.filter(pk=old.pk).update(expires_at="2000-01-01T00:00:00Z")
    stale = browser.post("/billing/change/confirm", {**csrf(browser), "preview": old.pk})
    assert stale.status_code == 409 and "expired" in stale.content.decode()
    fresh = ChangePreview.objects.exclude(pk=old.pk).get()
    assert f'value="{fresh.pk}"' in stale.content.decode()
    assert response.status_code == 303


def test_pages_refuse_without_csrf_and_show_refusals_on_the_billing_page(browser, fake, row):
    assert browser.post("/billing/change/preview", {"seats": "5"}).status_code == 403
    assert browser.post("/billing/change/confirm", {"preview": "x"}).status_code == 403
    refused = browser.post("/billing/change/preview", {**csrf(browser), "seats": "3"})
    assert refused.status_code == 400 and "already the subscription" in refused.content.decode()
    assert browser.get("/billing/change/preview/chp_nope").status_code == 404
    assert fake.calls() == []
