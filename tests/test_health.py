"""orgbilling_health against the live fake Chargebee: passes when all is well, fails with one line for each
problem, prints the same as JSON, and the admin index shows the summary without calling a vendor."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from orgbilling.chargebee_events import HANDLED_EVENTS
from orgbilling.models import JobRecord, WebhookDelivery

pytestmark = pytest.mark.django_db

ENDPOINT_URL = "http://testserver/api/webhooks/chargebee"


@pytest.fixture
def healthy(fake_chargebee):
    """A site where every promise holds: endpoint configured, a webhook just in, a full sync just done."""
    fake_chargebee.add_webhook_endpoint(ENDPOINT_URL)
    call_command(
        "orgbilling_sync",
        "--chargebee",
        "--invoices",
        "--payment-sources",
        "--prices",
        "--grace-periods",
        "--renewal-estimates",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    delivery("ev_recent", WebhookDelivery.Status.PROCESSED)
    return fake_chargebee


def delivery(event_id: str, status: str, *, age: timedelta = timedelta(), **fields) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        vendor="chargebee",
        event_id=event_id,
        event_type="subscription_changed",
        body="{}",
        status=status,
        received_at=timezone.now() - age,
        **fields,
    )


def health(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("orgbilling_health", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_passes_when_all_is_well(healthy):
    assert health() == (0, "healthy\n")
    assert len(healthy.calls("GET", "/webhook_endpoints")) == 1


def age_everything(**ages: timedelta) -> None:
    for name, age in ages.items():
        JobRecord.objects.filter(name="sync:chargebee").update(**{name: timezone.now() - age})


PROBLEMS = {
    "deliveries_failed": lambda fake: delivery("ev_failed", WebhookDelivery.Status.FAILED, last_error="boom"),
    "deliveries_stuck": lambda fake: delivery("ev_stuck", WebhookDelivery.Status.RECEIVED, age=timedelta(hours=1)),
    "webhooks_silent": lambda fake: WebhookDelivery.objects.update(received_at=timezone.now() - timedelta(days=3)),
    "sync_stale": lambda fake: age_everything(last_full_succeeded_at=timedelta(days=2)),
    "sync_failing": lambda fake: age_everything(last_failed_at=-timedelta(seconds=1)),
    "endpoint_missing": lambda fake: fake.store.delete("webhook_endpoint", _endpoint(fake)["id"]),
    "endpoint_disabled": lambda fake: fake.store.put("webhook_endpoint", {**_endpoint(fake), "disabled": True}),
    "endpoint_api_version": lambda fake: fake.store.put("webhook_endpoint", {**_endpoint(fake), "api_version": "v1"}),
    "endpoint_events": lambda fake: fake.store.put(
        "webhook_endpoint", {**_endpoint(fake), "enabled_events": list(HANDLED_EVENTS[:-1])}
    ),
    "endpoint_check_failed": lambda fake: fake.fail_next(3, 503, path="/webhook_endpoints"),
}


def _endpoint(fake) -> dict:
    [endpoint] = fake.store.find("webhook_endpoint", [])
    return endpoint


@pytest.mark.parametrize("code", PROBLEMS)
def test_fails_with_one_line_for_each_problem(healthy, code):
    PROBLEMS[code](healthy)

    status, output = health()

    assert status == 1
    [line] = output.splitlines()
    assert line.startswith(f"{code}: ")


def test_problem_lines_say_what_to_look_at(healthy):
    PROBLEMS["endpoint_events"](healthy)
    delivery("ev_failed", WebhookDelivery.Status.FAILED)

    assert health()[1].splitlines() == [
        "deliveries_failed: 1 webhook deliveries failed with no retry scheduled (a vendor retry or"
        " orgbilling_replay --failed heals them)",
        f"endpoint_events: Chargebee webhook endpoint {_endpoint(healthy)['id']} ({ENDPOINT_URL}) does not send"
        f" {HANDLED_EVENTS[-1]}",
    ]


def test_a_retry_scheduled_in_the_future_is_neither_failed_nor_stuck(healthy):
    due = timezone.now() + timedelta(minutes=5)
    delivery("ev_retrying", WebhookDelivery.Status.FAILED, age=timedelta(hours=1), next_attempt_at=due)

    assert health() == (0, "healthy\n")


def test_thresholds_come_from_settings(healthy, settings):
    WebhookDelivery.objects.update(received_at=timezone.now() - timedelta(hours=2))
    settings.ORGBILLING_HEALTH_WEBHOOK_MAX_AGE = {"chargebee": 3600, "scalekit": None}
    assert health()[1].startswith("webhooks_silent: no webhook from chargebee for longer than 3600s (last 2h ago)")

    settings.ORGBILLING_HEALTH_WEBHOOK_MAX_AGE = {"chargebee": None, "scalekit": 60}
    assert health()[1] == "webhooks_silent: no webhook from scalekit yet\n"

    settings.ORGBILLING_HEALTH_WEBHOOK_MAX_AGE = {}
    settings.ORGBILLING_HEALTH_SINCE_SYNC_MAX_AGE = 60
    age_everything(last_succeeded_at=timedelta(minutes=5))
    assert health()[1].startswith("sync_stale: no successful chargebee sync for longer than 60s")


def test_json_prints_the_same_as_one_object(healthy):
    PROBLEMS["endpoint_disabled"](healthy)

    status, output = health("--json")

    report = json.loads(output)
    assert status == 1 and report["healthy"] is False
    assert [problem["code"] for problem in report["problems"]] == ["endpoint_disabled"]
    assert report["last_webhooks"]["scalekit"] is None and report["last_webhooks"]["chargebee"]
    assert report["syncs"]["chargebee"]["last_full_succeeded_at"]
    assert report["deliveries"] == {"failed": 0, "unfinished_past_lease": 0}


def test_admin_index_shows_the_summary_without_calling_chargebee(healthy, admin_client):
    PROBLEMS["endpoint_disabled"](healthy)
    health()  # the command records what Chargebee said
    delivery("ev_failed", WebhookDelivery.Status.FAILED)
    healthy.reset_calls()

    page = admin_client.get("/admin/").content.decode()

    assert "Billing health" in page
    assert "deliveries_failed" in page and "endpoint_disabled" in page
    assert healthy.calls() == []


def test_admin_index_says_when_all_is_well(healthy, admin_client):
    health()

    page = admin_client.get("/admin/").content.decode()

    assert "Healthy: every check passed." in page
