"""Helpers for billing tests: a signed-in context without HTTP, and reading the fake's hosted pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from orgbilling.middleware import BillingContext
from orgbilling.models import Organization


def context_for(organization_id: str = "org_1", roles=("admin",), permissions=()) -> BillingContext:
    """What the middleware would attach for a Bearer token of this organization (created if new)."""
    organization = Organization.objects.get_or_create(id=organization_id)[0]
    return BillingContext("usr_1", organization_id, tuple(roles), tuple(permissions), "", organization, bearer=True)


def page_id(hosted_url: str) -> str:
    """The hosted page id in a fake Chargebee page URL (``.../pages/v3/<id>/``)."""
    return urlsplit(hosted_url).path.rstrip("/").rsplit("/", 1)[-1]
