"""Billing details (company, address, VAT or tax id, billing email): mirrored from the customer, edited here.

``customer_changed`` and the answer of ``update_billing_info`` both go
through ``apply_customer_details`` (ordering guard on the customer's
``resource_version``; the customer objects other events and syncs carry are
applied the same way, see ``customer_profile``). Billing managers edit them with ``update_details``:
one Chargebee call (``POST /customers/{id}/update_billing_info``), whose
validation errors come back as ``FieldRefused`` naming the form field.
"""

from __future__ import annotations

from django import forms
from django.db import transaction
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .authorization import Action, authorize_reference, require_organization, throttle
from .chargebee_gateway import ChargebeeError, get_gateway
from .checkout import vendor_problem
from .customer_profile import ADDRESS_FIELDS, store_customer
from .errors import BillingProblem
from .middleware import BillingContext
from .models import BillingProfile, Organization
from .payment_sources import locked_profile

DETAIL_FIELDS = ("company", "billing_email", "vat_number", "billing_address")


class BillingDetailsForm(forms.Form):
    company = forms.CharField(label=gettext_lazy("Company name"), max_length=250)
    line1 = forms.CharField(label=gettext_lazy("Address"), max_length=150)
    line2 = forms.CharField(label=gettext_lazy("Address line 2"), max_length=150, required=False)
    city = forms.CharField(label=gettext_lazy("City"), max_length=50)
    state = forms.CharField(label=gettext_lazy("State or region"), max_length=50, required=False)
    zip = forms.CharField(label=gettext_lazy("Postal code"), max_length=20, required=False)
    country = forms.RegexField(label=gettext_lazy("Country (two letters, e.g. DE)"), regex=r"^[A-Za-z]{2}$")
    vat_number = forms.CharField(label=gettext_lazy("VAT or tax id"), max_length=20, required=False)
    billing_email = forms.EmailField(label=gettext_lazy("Billing email"), max_length=70, required=False)


# What browsers may fill each field with (WCAG 1.3.5, identify input purpose); the VAT id has no token.
AUTOCOMPLETE = {
    "company": "organization",
    "line1": "address-line1",
    "line2": "address-line2",
    "city": "address-level2",
    "state": "address-level1",
    "zip": "postal-code",
    "country": "country",
    "billing_email": "email",
}


def initial_values(profile: BillingProfile | None) -> dict[str, str]:
    """The form's values from the mirrored billing details."""
    if profile is None:
        return {}
    return {**profile.billing_address, **{name: getattr(profile, name) for name in DETAIL_FIELDS[:3]}}


def shown_fields(form: BillingDetailsForm | None, profile: BillingProfile | None) -> list[dict]:
    """The form's fields as plain values for the billing page's template, which writes each ``<input>`` itself.

    ``form``: a submitted form being corrected (its values and errors); None shows ``profile``'s values, read
    from the form class's fields without building a form, which would deep-copy every field and widget.
    Django's widget rendering runs a template per field (most of the billing details section's time); the
    page needs only the name, id, label, type, current value, limits, autocomplete token and errors.
    """
    bound = form is not None and form.is_bound
    data = form.data if bound else form.initial if form is not None else initial_values(profile)
    errors = form.errors if bound else {}
    shown = []
    for name, field in (form.fields if form is not None else BillingDetailsForm.base_fields).items():
        value, field_errors = data.get(name), " ".join(errors.get(name, ()))
        max_length = getattr(field, "max_length", None)
        attributes = (  # in the order Django's widgets write them
            ("type", field.widget.input_type),
            ("name", name),
            ("value", "" if value is None else str(value)),
            ("maxlength", str(max_length) if max_length else ""),  # not localized
            ("required", field.required),
            ("autocomplete", AUTOCOMPLETE.get(name, "")),
            ("id", f"id_{name}"),
            ("aria-invalid", "true" if field_errors else ""),
            ("aria-describedby", f"id_{name}-error" if field_errors else ""),
        )
        shown.append(
            {
                "name": name,
                "id": f"id_{name}",
                "label": str(field.label),  # translated once, not at each use of a lazy string
                # One string, not a template branch per attribute: the form has nine fields.
                "attributes": mark_safe(  # every value is escaped here
                    "".join(
                        f" {key}" if value is True else f' {key}="{escape(value)}"'
                        for key, value in attributes
                        if value
                    )
                ),
                "errors": field_errors,
            }
        )
    return shown


class FieldRefused(BillingProblem):
    """Chargebee refused a value; ``field`` is the form field it names ("" when none)."""

    def __init__(self, message: str, field: str):
        super().__init__(message, status=400)
        self.field = field


def _field_of(param: str) -> str:
    """``billing_address[zip]`` -> ``zip``; ``vat_number`` -> ``vat_number``; others -> "" (whole form)."""
    name = param.removeprefix("billing_address[").rstrip("]")
    if name == "email":
        return "billing_email"
    return name if name in BillingDetailsForm.base_fields else ""


def apply_customer_details(customer: dict) -> bool:
    """Apply a customer's billing details and ``card_status`` when its version is newer (or equal and different)."""
    with transaction.atomic(savepoint=False):
        profile, _ = locked_profile(customer["id"], customer)
        if profile is None:
            return False
        return store_customer(profile, customer)


def authorize_edit(context: BillingContext | None) -> Organization:
    """403 for members before the form is even read."""
    return authorize_reference(context, require_organization(context).pk, Action.BILLING_DETAILS)


def update_details(context: BillingContext | None, cleaned: dict[str, str]) -> None:
    """Send the form's values to Chargebee (one call) and mirror its answer."""
    organization = authorize_reference(context, require_organization(context).pk, Action.BILLING_DETAILS)
    if not organization.chargebee_customer_id:
        raise BillingProblem(_("There is no billing account yet: subscribe first."), status=409)
    throttle(context, organization)
    address = {key: cleaned.get(key) or "" for key in ADDRESS_FIELDS}
    address.update(company=cleaned["company"], email=cleaned.get("billing_email") or "")
    address["country"] = address["country"].upper()
    try:
        customer = get_gateway().update_billing_info(
            organization.chargebee_customer_id, billing_address=address, vat_number=cleaned.get("vat_number") or ""
        )
    except ChargebeeError as exc:
        if exc.http_status == 400 and exc.param:
            raise FieldRefused(exc.message, _field_of(exc.param)) from exc
        raise vendor_problem(exc) from exc
    apply_customer_details(customer)
