"""orgbilling_sync as a command: --since against the live fake Chargebee, one run at a time, passes that register
their own flag, and the records orgbilling_health reads."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from orgbilling import jobs, sync_passes
from orgbilling.models import JobLock, JobRecord, Organization, Subscription
from orgbilling.sync_passes import PassReport, SyncPass
from sandbox.fake_chargebee import FakeChargebee, serve
from tests.chargebee_payloads import PLAN

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def chargebee(settings, clock):
    """A fake Chargebee whose clock the test moves; no webhooks reach the app (they are 'missed')."""
    fake = FakeChargebee(clock=clock)
    server = serve(fake)
    settings.CHARGEBEE_API_BASE_URL = server.url
    yield fake
    server.stop()


def sync(*args: str) -> str:
    out = io.StringIO()
    call_command("orgbilling_sync", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_since_applies_a_change_missed_by_webhooks_listing_only_what_changed(chargebee, clock):
    Organization.objects.create(id="org_a", chargebee_customer_id="cust_a")
    clock.now -= 2 * 3600
    changed, untouched = (chargebee.create_subscription("cust_a", PLAN, 2) for _ in range(2))
    sync("--chargebee")
    Subscription.objects.create(organization_id="org_a", chargebee_subscription_id="cb_gone", status="active")
    clock.now += 2 * 3600
    chargebee.change_seats(changed["id"], 5)  # its webhook never arrives
    chargebee.reset_calls()

    output = sync("--chargebee", "--since", "15m")

    assert Subscription.objects.get(chargebee_subscription_id=changed["id"]).seats == 5
    [call] = chargebee.calls("GET", "/subscriptions")
    assert abs(int(call.params["updated_at[after]"]) - (time.time() - 15 * 60)) < 60
    assert output.splitlines()[-1] == "chargebee: created 0, updated 1, repaired 0, unchanged 0, orphaned 0, failed 0"
    assert "cb_gone" not in output  # only a full run reports local orphans
    assert untouched["id"] not in output
    record = JobRecord.objects.get(name="sync:chargebee")
    assert record.last_succeeded_at > record.last_full_succeeded_at


@pytest.mark.parametrize("value", ["15", "0m", "2w", "-1h", "1.5h"])
def test_since_refuses_what_is_not_a_duration(chargebee, value):
    with pytest.raises(CommandError, match="is not a duration such as 15m, 2h or 1d"):
        sync("--chargebee", f"--since={value}")


def test_since_and_delete_missing_do_not_go_together(chargebee):
    with pytest.raises(CommandError, match="--delete-missing needs a full run"):
        sync("--since", "1d", "--delete-missing")


def test_a_run_that_starts_while_another_is_running_exits_with_a_message(chargebee):
    running = jobs.acquire("orgbilling_sync", 600)

    with pytest.raises(CommandError, match="another orgbilling_sync run is in progress .*: not starting"):
        sync("--chargebee")
    assert chargebee.calls() == []

    jobs.release(running)
    assert sync("--chargebee").endswith("failed 0\n")
    assert JobLock.objects.get().holder == ""  # released when the run ended


def test_a_lease_left_by_a_run_that_died_lapses(chargebee):
    jobs.acquire("orgbilling_sync", 600)
    JobLock.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert "chargebee: created 0" in sync("--chargebee")


def test_a_running_sync_renews_its_lease(monkeypatch):
    lease = jobs.acquire("orgbilling_sync", 30)
    monkeypatch.setattr(jobs.timezone, "now", lambda: lease.renewed_at + timedelta(seconds=11))
    lease.renew()
    assert JobLock.objects.get().expires_at == lease.renewed_at + timedelta(seconds=30)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrent writers need PostgreSQL")
def test_two_runs_starting_at_once_get_one_lease():
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def take() -> None:
        start.wait()
        try:
            jobs.acquire("orgbilling_sync", 600)
            outcomes.append("won")
        except jobs.Busy:
            outcomes.append("busy")
        finally:
            connection.close()

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["busy"] * 7 + ["won"]


def test_dry_run_neither_waits_for_nor_takes_the_lease(chargebee):
    jobs.acquire("orgbilling_sync", 600)

    assert "(dry run: nothing was written)" in sync("--chargebee", "--dry-run")
    assert not JobRecord.objects.exists()


def test_a_registered_pass_gets_its_flag_and_its_record(monkeypatch, chargebee):
    seen = []

    def widgets(options):
        seen.append(options)
        options.progress("widgets", 100)
        return PassReport("widgets 3", ["a widget to look at"])

    monkeypatch.setitem(sync_passes.PASSES, "widgets", SyncPass("widgets", "widgets from the vendor", widgets, list))

    output = sync("--widgets", "--since", "2h")

    assert output.splitlines() == ["a widget to look at", "widgets: widgets 3"]
    assert seen[0].since is not None and not seen[0].dry_run
    assert chargebee.calls() == []  # the other passes did not run
    assert JobRecord.objects.get(name="sync:widgets").last_summary == "widgets 3"


def test_a_failing_pass_does_not_stop_the_others_and_fails_the_run(monkeypatch, chargebee):
    def broken(options):
        return PassReport("stopped", problem="the vendor is down")

    monkeypatch.setitem(sync_passes.PASSES, "broken", SyncPass("broken", "fails", broken, list))

    with pytest.raises(CommandError, match="^broken: the vendor is down$"):
        sync()
    assert JobRecord.objects.get(name="sync:chargebee").last_succeeded_at is not None
    broken_record = JobRecord.objects.get(name="sync:broken")
    assert broken_record.failing and broken_record.last_error == "the vendor is down"


def test_an_unconfigured_pass_is_skipped_by_default_and_refused_when_asked_for(chargebee):
    assert sync().splitlines()[0] == (
        "scalekit: skipped (not configured: SCALEKIT_ENV_URL, SCALEKIT_CLIENT_ID, SCALEKIT_CLIENT_SECRET)"
    )
    with pytest.raises(CommandError, match="scalekit: not configured"):
        sync("--scalekit")
