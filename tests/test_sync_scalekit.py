"""orgbilling_sync's Scalekit pass over real HTTP: the whole project served with the sandbox's fake Scalekit and
fake Chargebee, Scalekit's webhooks dropped by the outage knob, pages failed by injected faults."""

from __future__ import annotations

import io
import threading
from datetime import datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from orgbilling.models import JobLock, JobRecord, Organization, WebhookDelivery
from sandbox import organizations, runtime
from tests.sandbox_support import served_app  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def outage(served_app):  # noqa: F811
    """Scalekit's webhooks are lost, as after an outage longer than its 22 minutes of retries."""
    runtime.sender().knobs.drop_scalekit = True
    yield runtime.sender()
    runtime.sender().wait_idle(20)


def sync(*args: str) -> str:
    out = io.StringIO()
    call_command("orgbilling_sync", "--scalekit", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def customers() -> list[dict]:
    return runtime.chargebee().store.find("customer", [])


def known(organization: dict) -> Organization:
    """A local organization already provisioned and up to date with Scalekit's ``organization``."""
    update_time = datetime.fromisoformat(organization["update_time"])
    organization_id = organization["id"]
    return Organization(id=organization_id, chargebee_customer_id=organization_id, scalekit_update_time=update_time)


def test_an_organization_whose_webhook_was_lost_is_provisioned_by_the_next_sync(outage):
    initech = organizations.create("Initech", "ext-9")
    assert outage.wait_idle(20) and not Organization.objects.exists()

    output = sync()

    organization = Organization.objects.get(pk=initech["id"])
    assert (organization.display_name, organization.external_id) == ("Initech", "ext-9")
    assert organization.chargebee_customer_id == initech["id"]
    assert [customer["id"] for customer in customers()] == [initech["id"]]
    assert f"provisioned: {initech['id']}" in output
    assert "scalekit: listed 1, provisioned 1, updated 0, unchanged 0" in output
    record = JobRecord.objects.get(name="sync:scalekit")
    assert record.last_full_succeeded_at and not record.failing

    # Scalekit's last retry arrives after all: the organization is there, nothing more happens.
    outage.knobs.drop_scalekit = False
    assert outage.release_dropped() == 1 and outage.wait_idle(20)
    delivery = WebhookDelivery.objects.get(event_type="organization.created")
    assert delivery.status in (WebhookDelivery.Status.IGNORED, WebhookDelivery.Status.PROCESSED)
    assert len(customers()) == 1


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrent writers need PostgreSQL")
def test_a_late_webhook_racing_the_sync_still_makes_one_customer(outage):
    initech = organizations.create("Initech")
    assert outage.wait_idle(20)
    outage.knobs.drop_scalekit = False
    start = threading.Barrier(2)
    outputs: list[str] = []

    def run_sync() -> None:
        start.wait()
        try:
            outputs.append(sync())
        finally:
            connection.close()

    syncing = threading.Thread(target=run_sync)
    syncing.start()
    start.wait()
    outage.release_dropped()
    syncing.join(60)
    assert outage.wait_idle(20)

    assert [customer["id"] for customer in customers()] == [initech["id"]]
    assert Organization.objects.get(pk=initech["id"]).chargebee_customer_id == initech["id"]
    assert WebhookDelivery.objects.get(event_type="organization.created").status != WebhookDelivery.Status.FAILED
    assert outputs and "failed 0" in outputs[0]


def test_a_newer_name_is_applied_and_sent_to_chargebee(outage):
    acme = organizations.create("Acme")
    outage.knobs.drop_scalekit = False
    outage.release_dropped()
    assert outage.wait_idle(20)
    outage.knobs.drop_scalekit = True
    organizations.rename(acme["id"], "Acme Corp")
    assert outage.wait_idle(20)

    output = sync()

    assert Organization.objects.get(pk=acme["id"]).display_name == "Acme Corp"
    assert runtime.chargebee().get_customer(acme["id"])["company"] == "Acme Corp"
    assert f"updated: {acme['id']}" in output
    assert sync().count("unchanged 1") == 1  # the same listing again changes nothing


def test_a_partial_listing_calls_nothing_gone_then_a_complete_one_deletes_with_delete_missing(settings, outage):
    directory = runtime.directory()
    with directory.store.transaction():
        listed = [directory.create_organization(f"Org {n}") for n in range(101)]  # two pages
    Organization.objects.bulk_create([known(organization) for organization in listed])  # up to date here
    gone = Organization.objects.create(id="org_gone", display_name="Gone", chargebee_customer_id="org_gone")
    runtime.chargebee().create_customer("org_gone")
    settings.SCALEKIT_MAX_RETRIES = 0
    runtime.scalekit_faults().fail_next(1, 503, path="/api/v1/organizations", after=1)  # the second page

    with pytest.raises(CommandError, match="scalekit: listing stopped after 100 organizations, nothing called gone"):
        sync("--delete-missing")
    gone.refresh_from_db()
    assert gone.deleted_at is None
    assert JobRecord.objects.get(name="sync:scalekit").failing

    output = sync("--delete-missing")

    gone.refresh_from_db()
    assert gone.deleted_at is not None
    assert "gone from Scalekit (404): org_gone" in output
    assert "deleted like organization.deleted: org_gone" in output
    assert "listed 101, provisioned 0, updated 0, unchanged 101" in output
    assert not JobRecord.objects.get(name="sync:scalekit").failing


def test_gone_organizations_are_only_reported_without_delete_missing(outage):
    Organization.objects.create(id="org_gone", chargebee_customer_id="org_gone")

    output = sync()

    assert "gone from Scalekit (404): org_gone" in output
    assert Organization.objects.get(pk="org_gone").deleted_at is None


def test_an_organization_deleted_here_is_reported_and_never_provisioned_again(outage):
    acme = organizations.create("Acme")
    assert outage.wait_idle(20)
    Organization.objects.create(id=acme["id"], display_name="Acme", deleted_at=datetime.now().astimezone())

    output = sync()

    assert f"deleted here, still listed by Scalekit (not provisioned again): {acme['id']}" in output
    assert customers() == []
    assert Organization.objects.get(pk=acme["id"]).chargebee_customer_id is None


def test_dry_run_reports_the_same_and_writes_or_calls_nothing_that_writes(outage):
    initech = organizations.create("Initech")
    assert outage.wait_idle(20)
    Organization.objects.create(id="org_gone", chargebee_customer_id="org_gone")
    runtime.chargebee().reset_calls()

    output = sync("--delete-missing", "--dry-run")

    assert f"would be provisioned: {initech['id']}" in output
    assert "would be deleted like organization.deleted: org_gone" in output
    assert "(dry run: nothing was written)" in output
    assert list(Organization.objects.values_list("id", "deleted_at")) == [("org_gone", None)]
    assert runtime.chargebee().calls() == []  # not even a read: nothing in Chargebee needed
    assert not JobLock.objects.exists() and not JobRecord.objects.exists()


def test_since_skips_the_search_for_gone_organizations(outage):
    Organization.objects.create(id="org_gone", chargebee_customer_id="org_gone")

    output = sync("--since", "15m")

    assert "gone from Scalekit (404)" not in output
    record = JobRecord.objects.get(name="sync:scalekit")
    assert record.last_succeeded_at and record.last_full_succeeded_at is None


def test_one_organization_is_asked_for_by_id(outage):
    acme = organizations.create("Acme")
    assert outage.wait_idle(20)
    Organization.objects.create(id=acme["id"])
    Organization.objects.create(id="org_gone", chargebee_customer_id="org_gone")

    assert f"provisioned: {acme['id']}" in sync("--org", acme["id"])
    output = sync("--org", "org_gone", "--delete-missing")

    assert "deleted like organization.deleted: org_gone" in output
    assert Organization.objects.get(pk="org_gone").deleted_at is not None
    assert not JobRecord.objects.exists()  # one organization is not a whole run
