"""orgbilling_sync and the admin resync action, against the live fake Chargebee (calls counted)."""

from __future__ import annotations

import io
import math

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command

from orgbilling import reconcile
from orgbilling.models import Organization, Subscription
from orgbilling.subscription_sync import apply_subscription
from tests.chargebee_payloads import PLAN, pc2_subscription, signal_log

pytestmark = pytest.mark.django_db

COUNTS = {"cust_a": 150, "cust_b": 95, "cust_unknown": 5}  # 250 subscriptions in Chargebee


sent = pytest.fixture(signal_log, name="sent")


@pytest.fixture
def chargebee(fake_chargebee):
    """Two known organizations and one stranger in Chargebee; a local row for each kind of outcome."""
    org_a = Organization.objects.create(id="org_a", chargebee_customer_id="cust_a")
    org_b = Organization.objects.create(id="org_b", chargebee_customer_id="cust_b")
    seeded = {
        customer_id: [fake_chargebee.create_subscription(customer_id, PLAN, 2) for _ in range(count)]
        for customer_id, count in COUNTS.items()
    }
    outdated, current = seeded["cust_a"][:2]
    Subscription.objects.create(
        organization=org_a,
        chargebee_subscription_id=outdated["id"],
        status="active",
        seats=1,
        resource_version=outdated["resource_version"] - 1,
    )
    apply_subscription(current)  # an exact copy: unchanged
    Subscription.objects.create(organization=org_b, chargebee_subscription_id="cb_gone", status="active")
    fake_chargebee.reset_calls()
    return fake_chargebee


def sync(*args: str, capture, stderr: io.StringIO | None = None) -> str:
    out = io.StringIO()
    with capture(execute=True):
        call_command("orgbilling_sync", "--chargebee", *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


def test_sync_lists_100_a_page_and_applies_everything_once(chargebee, sent, django_capture_on_commit_callbacks):
    output = sync(capture=django_capture_on_commit_callbacks)
    assert len(chargebee.calls("GET", "/subscriptions")) == math.ceil(sum(COUNTS.values()) / 100) == 3
    assert len(chargebee.calls()) == 3
    assert output.splitlines()[-1] == "chargebee: created 243, updated 1, repaired 0, unchanged 1, orphaned 6, failed 0"
    assert "orphaned locally (gone from Chargebee): cb_gone" in output
    assert output.count("orphaned in Chargebee (no known organization)") == 5
    assert Subscription.objects.filter(organization_id="org_a").count() == 150
    assert Subscription.objects.filter(organization_id="org_b").count() == 96
    assert sent.names().count("subscription_complete") == 243
    assert sent.names().count("subscription_updated") == 1


def test_a_second_sync_changes_nothing(chargebee, sent, django_capture_on_commit_callbacks):
    sync(capture=django_capture_on_commit_callbacks)
    sent.clear()
    output = sync(capture=django_capture_on_commit_callbacks)
    assert output.splitlines()[-1] == "chargebee: created 0, updated 0, repaired 0, unchanged 245, orphaned 6, failed 0"
    assert sent == []


def test_dry_run_reports_the_same_summary_and_writes_nothing(chargebee, sent, django_capture_on_commit_callbacks):
    before = list(Subscription.objects.order_by("pk").values())
    output = sync("--dry-run", capture=django_capture_on_commit_callbacks)
    assert output.splitlines()[-1] == (
        "chargebee: created 243, updated 1, repaired 0, unchanged 1, orphaned 6, failed 0"
        " (dry run: nothing was written)"
    )
    assert list(Subscription.objects.order_by("pk").values()) == before
    assert sent == []


def test_one_organization_is_listed_by_its_customer(chargebee, django_capture_on_commit_callbacks):
    output = sync("--org", "org_b", capture=django_capture_on_commit_callbacks)
    [call] = chargebee.calls("GET", "/subscriptions")
    assert call.params["customer_id[is]"] == "cust_b"
    assert output.splitlines()[-1] == "chargebee: created 95, updated 0, repaired 0, unchanged 0, orphaned 1, failed 0"
    assert Subscription.objects.filter(organization_id="org_a").count() == 2  # untouched


def test_an_unknown_organization_is_refused(chargebee):
    with pytest.raises(CommandError, match="no organization with id org_nope"):
        call_command("orgbilling_sync", "--org", "org_nope", stdout=io.StringIO())
    assert chargebee.calls() == []


def test_chargebee_failing_stops_the_sync_with_a_clear_error(chargebee):
    chargebee.fail_next(3, status=503, path="/subscriptions")
    with pytest.raises(CommandError, match="sync stopped"):
        call_command("orgbilling_sync", stdout=io.StringIO(), stderr=io.StringIO())


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_plain_lines_in_logs_and_one_redrawn_line_on_a_terminal(
    chargebee, django_capture_on_commit_callbacks
):
    log = io.StringIO()
    sync("--dry-run", capture=django_capture_on_commit_callbacks, stderr=log)
    assert log.getvalue().splitlines() == ["synced 100 subscriptions", "synced 200 subscriptions"]
    terminal = Terminal()
    sync("--dry-run", capture=django_capture_on_commit_callbacks, stderr=terminal)
    assert terminal.getvalue().count("\rsyncing: ") == 250
    assert terminal.getvalue().endswith("\rsyncing: 250 subscriptions\n")


def test_an_unreadable_snapshot_is_counted_and_the_rest_still_applied(monkeypatch):
    Organization.objects.create(id="org_a", chargebee_customer_id="cust_a")
    entries = [
        {"subscription": pc2_subscription("cb_bad", customer_id="cust_a", status="suspended")},
        {"subscription": pc2_subscription("cb_good", customer_id="cust_a")},
    ]

    class Gateway:
        def iter_subscriptions(self, customer_id=None, updated_after=None):
            return iter(entries)

    monkeypatch.setattr(reconcile, "get_gateway", Gateway)
    summary = reconcile.sync_subscriptions()
    assert (summary.failed, summary.created) == (["cb_bad"], 1)
    with pytest.raises(CommandError, match="1 subscriptions could not be applied"):
        call_command("orgbilling_sync", stdout=io.StringIO(), stderr=io.StringIO())


def test_admin_resync_asks_first_then_syncs_only_the_selected_organizations(
    chargebee, admin_client, django_capture_on_commit_callbacks
):
    form = {"action": "resync_from_chargebee", "_selected_action": ["org_b"]}
    page = admin_client.post("/admin/orgbilling/organization/", form)
    assert page.status_code == 200 and chargebee.calls() == []
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post("/admin/orgbilling/organization/", {**form, "confirmed": "yes"}, follow=True)
    assert [str(message) for message in done.context["messages"]] == [
        "org_b: created 95, updated 0, repaired 0, unchanged 0, orphaned 1, failed 0"
    ]
    [call] = chargebee.calls("GET", "/subscriptions")
    assert call.params["customer_id[is]"] == "cust_b"


def test_admin_resync_needs_its_own_permission(client):
    staff = User.objects.create_user("support", password="pw", is_staff=True)
    codenames = ("view_organization", "replay_webhookdelivery", "open_in_chargebee")
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(staff)
    page = client.get("/admin/orgbilling/organization/")
    assert page.status_code == 200
    assert "resync_from_chargebee" not in page.content.decode()
