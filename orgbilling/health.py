"""Is every promise still being kept? The report behind ``manage.py orgbilling_health`` and the admin index.

Each problem has a stable ``code`` and one line of text. Everything is read
from local tables except the Chargebee webhook endpoint check, which asks
Chargebee (``GET /webhook_endpoints``) only when ``ask_chargebee`` is set: the
command does, and records what it found, so the admin index (a page view,
which never calls a vendor) shows the last findings with their time.

When a vendor last sent a webhook is read from the delivery log itself (the
newest ``received_at``): a separate "last seen" row would cost a write on
every webhook, and pruning keeps deliveries far longer than any sensible
threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from . import conf, jobs
from .chargebee_events import HANDLED_EVENTS
from .chargebee_gateway import ChargebeeError, get_gateway
from .links import absolute_url
from .models import JobRecord, WebhookDelivery
from .sync_passes import PASSES

ENDPOINT_CHECK = "check:chargebee_webhook_endpoints"
API_VERSION = "v2"


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


@dataclass
class HealthReport:
    checked_at: datetime
    problems: list[Problem] = field(default_factory=list)
    deliveries: dict = field(default_factory=dict)
    last_webhooks: dict = field(default_factory=dict)  # vendor -> ISO time or None
    syncs: dict = field(default_factory=dict)  # pass -> its record's times and last error
    chargebee_endpoints: dict = field(default_factory=dict)  # when checked, and what was found

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"healthy": self.healthy, **_iso(asdict(self))}


def _iso(value):
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict):
        return {key: _iso(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_iso(item) for item in value]
    return value


def _ago(moment: datetime, now: datetime) -> str:
    seconds = int((now - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _count(report: HealthReport, key: str, deliveries: QuerySet, code: str, message: str) -> None:
    """Count ``deliveries`` into the report; any at all is a problem (``message`` follows the count)."""
    report.deliveries[key] = count = deliveries.count()
    if count:
        report.problems.append(Problem(code, f"{count} {message}"))


def _deliveries(report: HealthReport, now: datetime) -> None:
    failed = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.FAILED, next_attempt_at__isnull=True)
    message = (
        "webhook deliveries failed with no retry scheduled (a vendor retry or orgbilling_replay --failed heals them)"
    )
    _count(report, "failed", failed, "deliveries_failed", message)
    lease = conf.get("ORGBILLING_HEALTH_DELIVERY_LEASE")
    if lease is None:
        return
    overdue = now - timedelta(seconds=lease)
    # Due (received, or a retry whose time came) longer than the lease ago, and still not finished.
    stuck = WebhookDelivery.objects.filter(
        Q(status=WebhookDelivery.Status.RECEIVED, received_at__lt=overdue)
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=overdue))
        | Q(status=WebhookDelivery.Status.FAILED, next_attempt_at__lt=overdue)
    )
    message = f"webhook deliveries unfinished more than {lease}s after they were due (is a worker running?)"
    _count(report, "unfinished_past_lease", stuck, "deliveries_stuck", message)


def _too_old(code: str, what: str, last: datetime | None, limit: int | None, now: datetime) -> list[Problem]:
    """A problem when ``what`` (last seen at ``last``) never happened or not within ``limit`` seconds."""
    if limit is None:
        return []
    if last is None:
        return [Problem(code, f"no {what} yet")]
    if now - last > timedelta(seconds=limit):
        return [Problem(code, f"no {what} for longer than {limit}s (last {_ago(last, now)})")]
    return []


def _webhooks(report: HealthReport, now: datetime) -> None:
    limits = conf.get("ORGBILLING_HEALTH_WEBHOOK_MAX_AGE") or {}
    for vendor in WebhookDelivery.Vendor.values:
        last = WebhookDelivery.objects.filter(vendor=vendor).aggregate(last=Max("received_at"))["last"]
        report.last_webhooks[vendor] = last
        report.problems += _too_old("webhooks_silent", f"webhook from {vendor}", last, limits.get(vendor), now)


def _syncs(report: HealthReport, now: datetime) -> None:
    full_limit = conf.get("ORGBILLING_HEALTH_SYNC_MAX_AGE")
    any_limit = conf.get("ORGBILLING_HEALTH_SINCE_SYNC_MAX_AGE")
    records = JobRecord.objects.in_bulk([f"sync:{name}" for name in PASSES], field_name="name")
    for name, sync_pass in PASSES.items():
        if sync_pass.missing_settings():
            continue  # a pass that cannot run is not expected to have run
        record = records.get(f"sync:{name}") or JobRecord(name=f"sync:{name}")
        report.syncs[name] = {
            "last_started_at": record.last_started_at,
            "last_succeeded_at": record.last_succeeded_at,
            "last_full_succeeded_at": record.last_full_succeeded_at,
            "last_failed_at": record.last_failed_at,
            "last_error": record.last_error,
        }
        if record.failing:
            failed = f"the last {name} sync failed {_ago(record.last_failed_at, now)}: {record.last_error}"
            report.problems.append(Problem("sync_failing", failed))
        full = f"successful full {name} sync"
        report.problems += _too_old("sync_stale", full, record.last_full_succeeded_at, full_limit, now)
        report.problems += _too_old("sync_stale", f"successful {name} sync", record.last_succeeded_at, any_limit, now)


def endpoint_problems(endpoints: list[dict], url: str) -> list[Problem]:
    """What is wrong with how Chargebee sends to ``url``: fine when one endpoint for it is."""
    mine = [endpoint for endpoint in endpoints if (endpoint.get("url") or "").rstrip("/") == url.rstrip("/")]
    if not mine:
        return [Problem("endpoint_missing", f"no Chargebee webhook endpoint sends to {url}")]
    problems: list[Problem] = []
    for endpoint in mine:
        label = f"Chargebee webhook endpoint {endpoint.get('id')} ({url})"
        found = []
        if endpoint.get("disabled"):
            found.append(Problem("endpoint_disabled", f"{label} is disabled"))
        if endpoint.get("api_version") != API_VERSION:
            found.append(
                Problem(
                    "endpoint_api_version", f"{label} uses API version {endpoint.get('api_version')}, not {API_VERSION}"
                )
            )
        # An endpoint with no event list is sent every event.
        enabled = endpoint.get("enabled_events") or HANDLED_EVENTS
        missing = [event for event in HANDLED_EVENTS if event not in enabled]
        if missing:
            found.append(Problem("endpoint_events", f"{label} does not send {', '.join(missing)}"))
        if not found:
            return []
        problems += found
    return problems


def _ask_chargebee(report: HealthReport, now: datetime) -> None:
    url = absolute_url("orgbilling:chargebee-webhook")  # the mount and FORCE_SCRIPT_NAME once
    jobs.record_start(ENDPOINT_CHECK)
    try:
        found = endpoint_problems(get_gateway().list_webhook_endpoints(), url)
    except ChargebeeError as exc:
        problem = Problem("endpoint_check_failed", f"could not list Chargebee's webhook endpoints: {exc}")
        jobs.record_outcome(ENDPOINT_CHECK, ok=False, summary=problem.message, findings=[])
        report.chargebee_endpoints = {"checked_at": now, "problems": [asdict(problem)]}
        report.problems.append(problem)
        return
    jobs.record_outcome(
        ENDPOINT_CHECK, ok=True, summary=f"{len(found)} problems", findings=[asdict(item) for item in found]
    )
    report.chargebee_endpoints = {"checked_at": now, "problems": [asdict(item) for item in found]}
    report.problems += found


def _last_endpoint_check(report: HealthReport) -> None:
    record = JobRecord.objects.filter(name=ENDPOINT_CHECK).first()
    if record is None:
        report.chargebee_endpoints = {"checked_at": None, "problems": []}
        return
    checked_at = max(filter(None, (record.last_succeeded_at, record.last_failed_at)), default=None)
    problems = [Problem(**item) for item in record.findings]
    if record.failing:
        problems = [Problem("endpoint_check_failed", record.last_error)]
    report.chargebee_endpoints = {"checked_at": checked_at, "problems": [asdict(item) for item in problems]}
    report.problems += problems


def check(*, ask_chargebee: bool, now: datetime | None = None) -> HealthReport:
    """Every check; ``ask_chargebee`` False (page views) shows the last recorded endpoint check instead."""
    now = now or timezone.now()
    report = HealthReport(checked_at=now)
    _deliveries(report, now)
    _webhooks(report, now)
    _syncs(report, now)
    if not conf.get("CHARGEBEE_API_KEY"):
        report.chargebee_endpoints = {"checked_at": None, "problems": []}
    elif ask_chargebee:
        _ask_chargebee(report, now)
    else:
        _last_endpoint_check(report)
    return report
