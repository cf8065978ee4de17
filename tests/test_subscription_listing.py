"""The gated read's listing (a statement built once per process) gives what the ORM's ``select_related`` gives.

Field by field, on every concrete field of the three models (so a field added later is checked too), with the
converters each database needs (JSON, dates, booleans on SQLite), a missing billing profile cached as missing,
and one query.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection  # noqa: F401  read by the skipif condition

from orgbilling import checkout, notices, subscription_listing
from orgbilling.models import BillingProfile, Organization, Subscription

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


@pytest.fixture
def organizations():
    moment = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    profiled = Organization.objects.create(id="org_listed", chargebee_customer_id="cust_listed", seat_limit=7)
    BillingProfile.objects.create(
        organization=profiled, card_expiry_month=4, card_expiry_year=2030, billing_address={"city": "Zürich"}
    )
    Subscription.objects.create(organization=profiled, status="cancelled", seats=1, created_at=moment)
    Subscription.objects.create(
        organization=profiled,
        status="active",
        seats=5,
        items=[{"item_price_id": "team", "item_type": "plan", "quantity": 5}],
        scheduled_change={"seats": 3},
        current_period_end=moment,
        cancel_at_period_end=True,
        resource_version=2**40,
        renewal_amount=12_345,
    )
    bare = Organization.objects.create(id="org_unprofiled")
    Subscription.objects.create(organization=bare, status="future")
    return profiled, bare


def test_the_listing_equals_the_orms_select_related(organizations, django_assert_num_queries):
    for organization in organizations:
        expected = list(notices.with_profiles(checkout.listed_subscriptions(organization.id)))
        with django_assert_num_queries(1):
            listed = subscription_listing.listed_with_profiles(organization.id)
            assert [row.pk for row in listed] == [row.pk for row in expected]
            for ours, theirs in zip(listed, expected, strict=True):
                assert _fields(ours) == _fields(theirs)
                assert _fields(ours.organization) == _fields(theirs.organization)
                has_profile = hasattr(theirs.organization, "billing_profile")
                assert hasattr(ours.organization, "billing_profile") is has_profile
                if has_profile:
                    assert _fields(ours.organization.billing_profile) == _fields(theirs.organization.billing_profile)
                    assert ours.organization.billing_profile.organization is ours.organization
                assert not ours._state.adding and ours._state.db == theirs._state.db


def test_an_organization_without_subscriptions_lists_none(organizations):
    assert subscription_listing.listed_with_profiles("org_nobody") == []


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="psycopg's prepared statements")
def test_where_statements_may_be_prepared_the_listing_is_prepared_once(
    organizations, prepared_statements, django_assert_num_queries
):
    before = prepared_statements("%orgbilling_billingprofile%")
    for organization in organizations:
        expected = list(notices.with_profiles(checkout.listed_subscriptions(organization.id)))
        with django_assert_num_queries(1):
            listed = subscription_listing.listed_with_profiles(organization.id)
        assert [_fields(row) for row in listed] == [_fields(row) for row in expected]
        assert [_fields(row.organization) for row in listed] == [_fields(row.organization) for row in expected]
    # Prepared by the first call, reused by the second.
    assert prepared_statements("%orgbilling_billingprofile%") == before + 1
