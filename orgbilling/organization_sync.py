"""The Scalekit pass of ``orgbilling_sync``: list every organization and apply it like its webhook.

Scalekit retries a webhook for about 22 minutes and cannot list past events,
so after a longer outage only a listing finds the organizations whose
``organization.*`` events were lost. Each listed organization goes through
``apply_organization``, the webhook's own race-safe path (a late webhook
racing the sync still makes one customer), so only names newer than stored
are applied. An organization is called gone only after a *complete* listing
left it out and ``GET /organizations/{id}`` answered 404; only then may
``delete_missing`` run the ``organization.deleted`` path. An organization
deleted here is never provisioned again, even while Scalekit still lists it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from .chargebee_gateway import ChargebeeError
from .event_envelope import storable
from .models import Organization
from .provisioning import OrganizationDeleted, apply_organization, delete_organization
from .scalekit_events import ORGANIZATION_ID
from .scalekit_management import ScalekitError, get_client

logger = logging.getLogger(__name__)


@dataclass
class OrganizationSyncSummary:
    """One run's outcome; the lists hold organization ids (``failed``: "id: reason")."""

    dry_run: bool = False
    listed: int = 0
    complete: bool = False  # the listing reached its last page
    provisioned: list[str] = field(default_factory=list)  # unknown here, or without a Chargebee customer
    updated: list[str] = field(default_factory=list)  # a newer name or external id
    unchanged: int = 0
    deleted_here: list[str] = field(default_factory=list)  # listed by Scalekit, deleted locally: not provisioned
    gone: list[str] = field(default_factory=list)  # known here, left out of a complete listing, and 404
    deleted: list[str] = field(default_factory=list)  # gone, and deleted by --delete-missing
    failed: list[str] = field(default_factory=list)
    error: str = ""  # why the run stopped early

    def __str__(self) -> str:
        would = "would be " if self.dry_run else ""
        text = (
            f"listed {self.listed}, {would}provisioned {len(self.provisioned)}, {would}updated {len(self.updated)},"
            f" unchanged {self.unchanged}, deleted here {len(self.deleted_here)}, gone from Scalekit {len(self.gone)},"
            f" {would}deleted {len(self.deleted)}, failed {len(self.failed)}"
        )
        return text + (" (dry run: nothing was written)" if self.dry_run else "")


def _time(value: object) -> datetime | None:
    """Scalekit's RFC 3339 times (nanoseconds are cut to microseconds); None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _unreadable(organization: dict) -> str:
    """Why a listed organization cannot be stored (the webhook's own limits), or ""."""
    if not isinstance(organization.get("id"), str) or not ORGANIZATION_ID.fullmatch(organization["id"]):
        return "its id is not 1-50 letters, digits or _-.@"
    for key in ("display_name", "external_id"):
        if organization.get(key) is not None and not storable(organization[key], 255):
            return f"{key} is not a string of at most 255 characters"
    return ""


def _apply_listed(organization: dict, local: Organization | None, summary: OrganizationSyncSummary) -> None:
    organization_id = organization["id"]
    if local is not None and local.is_deleted:
        summary.deleted_here.append(organization_id)
        return
    update_time = _time(organization.get("update_time"))
    provision = local is None or not local.chargebee_customer_id
    newer = local is None or (
        update_time is not None and (local.scalekit_update_time is None or update_time > local.scalekit_update_time)
    )
    if not (provision or newer):
        summary.unchanged += 1
        return
    if not summary.dry_run:
        try:
            apply_organization(
                organization_id,
                display_name=organization.get("display_name") or "",
                external_id=organization.get("external_id") or "",
                update_time=update_time,
            )
        except OrganizationDeleted:  # deleted by a webhook since the page was read
            summary.deleted_here.append(organization_id)
            return
        except ChargebeeError as exc:
            summary.failed.append(f"{organization_id}: {exc}")
            return
    (summary.provisioned if provision else summary.updated).append(organization_id)


def _apply_page(page: Iterable[dict], summary: OrganizationSyncSummary, listed: set[str]) -> None:
    page = list(page)
    known = Organization.objects.in_bulk([org.get("id") for org in page if isinstance(org.get("id"), str)])
    for organization in page:
        summary.listed += 1
        if problem := _unreadable(organization):
            summary.failed.append(f"{organization.get('id')!r}: {problem}")
            continue
        listed.add(organization["id"])
        _apply_listed(organization, known.get(organization["id"]), summary)


def _gone(organization_id: str, summary: OrganizationSyncSummary, delete_missing: bool) -> None:
    """Scalekit answered 404: report it, and with ``delete_missing`` run the ``organization.deleted`` path."""
    summary.gone.append(organization_id)
    if not delete_missing:
        return
    if not summary.dry_run:
        try:
            delete_organization(organization_id)
        except ChargebeeError as exc:
            summary.failed.append(f"{organization_id}: deletion stopped ({exc})")
            return
    summary.deleted.append(organization_id)


def _confirm_gone(organization_ids: Iterable[str], summary: OrganizationSyncSummary, delete_missing: bool) -> None:
    """A 404 makes an unlisted organization gone; any other answer leaves it alone."""
    client = get_client()
    for organization_id in organization_ids:
        try:
            client.get_organization(organization_id)  # found: created after the listing read its page
        except ScalekitError as exc:
            if exc.not_found:
                _gone(organization_id, summary, delete_missing)
            else:
                summary.failed.append(f"{organization_id}: not confirmed gone ({exc})")


def sync_organizations(
    *,
    organization: Organization | None = None,
    dry_run: bool = False,
    find_gone: bool = True,
    delete_missing: bool = False,
    progress: Callable[[int], None] | None = None,
) -> OrganizationSyncSummary:
    """Apply every Scalekit organization (or one), and report (or delete) those Scalekit no longer has.

    ``find_gone`` False (the frequent ``--since`` run) skips the search for what is gone.
    ``dry_run`` makes only Scalekit GETs and writes nothing. When Scalekit fails midway, what
    was listed is applied, ``error`` says why and ``complete`` stays False: nothing is called gone.
    """
    summary = OrganizationSyncSummary(dry_run=dry_run)
    try:
        client = get_client()
        if organization is not None:
            try:
                _apply_page([client.get_organization(organization.id)], summary, set())
            except ScalekitError as exc:
                if not exc.not_found:
                    raise
                _gone(organization.id, summary, delete_missing)
            summary.complete = True
            return summary
        listed: set[str] = set()
        for page in client.iter_organizations():
            _apply_page(page, summary, listed)
            if progress is not None:
                progress(summary.listed)
        summary.complete = True
    except ScalekitError as exc:
        summary.error = str(exc)
        return summary
    if find_gone:
        known = set(Organization.objects.filter(deleted_at__isnull=True).values_list("id", flat=True))
        _confirm_gone(sorted(known - listed), summary, delete_missing)
    return summary
