"""Billing details: mirrored from customer_changed, edited by billing managers, Chargebee's errors on the field."""

from __future__ import annotations

import pytest
from django.test import Client

from orgbilling import provisioning
from orgbilling.models import BillingProfile, Organization
from tests.chargebee_payloads import CUSTOMER_ID, START, pc2_customer, post_event

pytestmark = pytest.mark.django_db

FORM = {
    "company": "Acme Corp GmbH",
    "line1": "Hauptstrasse 1",
    "city": "Berlin",
    "zip": "10115",
    "country": "de",
    "vat_number": "DE123456789",
    "billing_email": "billing@acme.test",
}


def customer_changed(version: int, **address) -> dict:
    customer = dict(pc2_customer(), resource_version=START * 1000 + version, vat_number="DE123456789")
    customer["billing_address"] = {"company": "Acme Corp GmbH", "line1": "Hauptstrasse 1", "country": "DE", **address}
    return {
        "id": f"ev_cc_{version}",
        "event_type": "customer_changed",
        "occurred_at": START,
        "content": {"customer": customer},
    }


def test_customer_changed_mirrors_the_details_with_the_ordering_guard(client):
    Organization.objects.create(id="org_1", chargebee_customer_id=CUSTOMER_ID)
    post_event(client, customer_changed(2, city="Berlin"))
    post_event(client, customer_changed(1, city="Hamburg"))  # older
    profile = BillingProfile.objects.get()
    assert (profile.company, profile.vat_number) == ("Acme Corp GmbH", "DE123456789")
    assert profile.billing_address == {"line1": "Hauptstrasse 1", "city": "Berlin", "country": "DE"}


@pytest.fixture
def customer(fake_chargebee):
    organization = provisioning.ensure_customer("org_1", "Acme Corp")
    fake_chargebee.reset_calls()
    return organization


def test_managers_save_details_in_one_call(scalekit, customer, fake_chargebee):
    browser = scalekit.sign_in(Client())
    response = browser.post("/billing/details", FORM)
    assert response.status_code == 302 and response["Location"] == "/billing#billing-details"
    [call] = fake_chargebee.calls()
    assert call.path == "/customers/org_1/update_billing_info" and call.params["billing_address[country]"] == "DE"
    assert fake_chargebee.get_customer("org_1")["vat_number"] == "DE123456789"
    profile = BillingProfile.objects.get()
    assert (profile.billing_email, profile.billing_address["city"]) == ("billing@acme.test", "Berlin")
    html = browser.get("/billing").content.decode()
    assert "billing details are saved" in html and 'value="Hauptstrasse 1"' in html


def test_chargebee_refusing_the_vat_id_is_shown_on_the_field(scalekit, customer, fake_chargebee):
    response = scalekit.sign_in(Client()).post("/billing/details", {**FORM, "vat_number": "12-34"})
    html = response.content.decode()
    assert response.status_code == 400
    field = html[html.index('name="vat_number"') :]
    assert field.index("The VAT number is not in a valid format") < field.index("</form>")
    assert 'value="12-34"' in html and not BillingProfile.objects.exists()


def test_local_validation_members_and_chargebee_down(scalekit, customer, fake_chargebee):
    browser = scalekit.sign_in(Client())
    invalid = browser.post("/billing/details", {**FORM, "country": "Germany", "billing_email": "nope"})
    assert invalid.status_code == 400 and fake_chargebee.calls() == []
    assert "Enter a valid email address" in invalid.content.decode()
    member = scalekit.sign_in(Client(), roles=["member"])
    assert member.post("/billing/details", FORM).status_code == 403
    assert 'action="/billing/details"' not in member.get("/billing").content.decode()
    fake_chargebee.fail_next(3, status=503)
    assert browser.post("/billing/details", FORM).status_code == 502


def test_the_fields_are_written_with_labels_limits_autocomplete_and_their_errors(scalekit, customer, fake_chargebee):
    """The page writes each input itself (not Django's widget templates): nothing a field had is lost."""
    browser = scalekit.sign_in(Client())
    html = browser.get("/billing").content.decode()
    assert '<label for="id_company">Company name</label>' in html
    assert (
        '<input type="text" name="company" maxlength="250" required autocomplete="organization" id="id_company">'
        in html
    )
    assert '<input type="text" name="line2" maxlength="150" autocomplete="address-line2" id="id_line2">' in html
    assert '<input type="text" name="country" required autocomplete="country" id="id_country">' in html
    assert 'type="email" name="billing_email" maxlength="70" autocomplete="email" id="id_billing_email">' in html
    assert '<input type="text" name="vat_number" maxlength="20" id="id_vat_number">' in html  # no token for a VAT id
    for name in ("company", "line1", "line2", "city", "state", "zip", "country", "vat_number", "billing_email"):
        assert f'<label for="id_{name}">' in html and f'id="id_{name}"' in html  # every input labelled

    invalid = browser.post("/billing/details", {**FORM, "company": '"Acme" <b>', "billing_email": "nope"})
    html = invalid.content.decode()
    assert 'value="&quot;Acme&quot; &lt;b&gt;"' in html  # the sent value, escaped
    assert 'id="id_billing_email" aria-invalid="true" aria-describedby="id_billing_email-error">' in html
    assert '<p class="ob-field-error" id="id_billing_email-error" role="alert">Enter a valid email address.' in html
    assert 'aria-invalid="true" aria-describedby="id_company-error"' not in html
