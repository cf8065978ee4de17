"""authorize_reference, the billing-manager rule, the project hook, and the per-organization throttle."""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.utils import timezone

from orgbilling.authorization import Action, authorize_reference, is_billing_manager, throttle
from orgbilling.errors import BillingDenied, NotSignedIn, Throttled
from orgbilling.middleware import BillingContext
from orgbilling.models import Organization
from tests.billing_support import context_for

pytestmark = pytest.mark.django_db

DENIED_BY_HOOK = []


def deny_portal(context, reference_id, action):
    """A project hook: no portal for this organization; every call is recorded."""
    DENIED_BY_HOOK.append((context.organization_id, reference_id, action))
    if action == Action.PORTAL:
        raise BillingDenied("The portal is closed for delinquent organizations.")
    return None


def deny_everything(context, reference_id, action):
    return False


def test_own_organization_is_allowed():
    context = context_for()
    for action in Action:
        assert authorize_reference(context, "org_1", action) == context.organization


@pytest.mark.parametrize("action", list(Action))
def test_another_organizations_reference_is_denied(action):
    Organization.objects.create(id="org_2")
    with pytest.raises(BillingDenied) as caught:
        authorize_reference(context_for(), "org_2", action)
    assert caught.value.status == 403 and isinstance(caught.value, PermissionDenied)


def test_signed_out_and_organizationless_users_are_refused():
    with pytest.raises(NotSignedIn):
        authorize_reference(None, "org_1", Action.VIEW)
    no_org = BillingContext("usr_1", "", ("admin",), (), "", None, bearer=True)
    with pytest.raises(BillingDenied, match="Organization context required for billing"):
        authorize_reference(no_org, "", Action.VIEW)


@pytest.mark.parametrize("action", [Action.SUBSCRIBE, Action.CHANGE, Action.PORTAL])
def test_members_cannot_change_billing(action):
    with pytest.raises(BillingDenied, match="billing managers"):
        authorize_reference(context_for(roles=("member",)), "org_1", action)


@pytest.mark.parametrize("action", [Action.VIEW, Action.SYNC])
def test_members_can_read_and_resync(action):
    assert authorize_reference(context_for(roles=("member",)), "org_1", action)


def test_billing_manager_roles_and_permissions_are_settings(settings):
    settings.ORGBILLING_BILLING_MANAGER_ROLES = "owner,finance"
    settings.ORGBILLING_BILLING_MANAGER_PERMISSIONS = ["billing:manage"]
    assert not is_billing_manager(context_for(roles=("admin",)))
    assert is_billing_manager(context_for(roles=("finance",)))
    assert is_billing_manager(context_for(roles=("member",), permissions=("billing:manage",)))


def test_deleted_organization_cannot_change_billing():
    context = context_for()
    Organization.objects.filter(pk="org_1").update(deleted_at=timezone.now())
    context.organization.refresh_from_db()
    assert authorize_reference(context, "org_1", Action.VIEW)
    with pytest.raises(BillingDenied, match="deleted"):
        authorize_reference(context, "org_1", Action.SUBSCRIBE)


def test_hook_can_deny_more(settings):
    settings.ORGBILLING_AUTHORIZATION_HOOK = "tests.test_authorization.deny_portal"
    DENIED_BY_HOOK.clear()
    context = context_for()
    assert authorize_reference(context, "org_1", Action.SUBSCRIBE)
    with pytest.raises(BillingDenied, match="delinquent"):
        authorize_reference(context, "org_1", Action.PORTAL)
    assert DENIED_BY_HOOK == [("org_1", "org_1", Action.SUBSCRIBE), ("org_1", "org_1", Action.PORTAL)]


def test_hook_runs_only_after_the_built_in_rules(settings):
    settings.ORGBILLING_AUTHORIZATION_HOOK = "tests.test_authorization.deny_portal"
    DENIED_BY_HOOK.clear()
    with pytest.raises(BillingDenied):
        authorize_reference(context_for(), "org_2", Action.SUBSCRIBE)
    assert DENIED_BY_HOOK == []


def test_hook_returning_false_denies(settings):
    settings.ORGBILLING_AUTHORIZATION_HOOK = "tests.test_authorization.deny_everything"
    with pytest.raises(BillingDenied, match="not allowed"):
        authorize_reference(context_for(), "org_1", Action.VIEW)


def spend(organization_id: str = "org_1", roles=("admin",), user_id: str = "usr_1") -> None:
    context = replace(context_for(organization_id, roles=roles), user_id=user_id)
    throttle(context, context.organization)


def test_throttle_counts_per_organization(settings):
    settings.ORGBILLING_THROTTLE_RATE = "3/day"  # a fixed window: no boundary within the test
    for _ in range(3):
        spend()
    with pytest.raises(Throttled) as caught:
        spend(user_id="usr_2")  # another billing manager of the organization shares the budget
    assert 1 <= caught.value.retry_after <= 86_400
    assert caught.value.status == 429 and caught.value.headers == {"Retry-After": str(caught.value.retry_after)}
    spend("org_2")  # another organization has its own budget


def test_throttle_can_be_disabled(settings):
    settings.ORGBILLING_THROTTLE_RATE = ""
    for _ in range(50):
        spend()


@pytest.mark.parametrize("rate", ["ten/minute", "10/fortnight", "10"])
def test_malformed_rate_says_what_to_set(settings, rate):
    settings.ORGBILLING_THROTTLE_RATE = rate
    with pytest.raises(ImproperlyConfigured, match="ORGBILLING_THROTTLE_RATE"):
        spend()
