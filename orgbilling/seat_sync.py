"""``orgbilling_sync``'s seat pass: every wanted limit worked out again, unconfirmed ones sent, members counted.

It heals what the live path could not finish: a limit whose send failed or
whose process died after commit, a limit changed by a setting
(``ORGBILLING_SEATS_WITHOUT_SUBSCRIPTION``), counts left stale by the inline
recount interval, and what Scalekit sends no event for (an invite expiring,
a member blocked), which only a full run (no ``--since``) sees. With
``ORGBILLING_SEAT_SOURCE = "directory"`` it lists each organization's
directory users instead and repairs their table (``--since``: only users
updated since), reporting each change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q

from .directory_seats import directory_mode, sync_directory
from .models import Organization, SeatLimitStatus
from .scalekit_management import ScalekitError
from .seat_counts import count_members
from .seat_limits import refresh_limit, send_limit, wanted_limit

if TYPE_CHECKING:
    from .sync_passes import PassReport, SyncOptions


def sync_seats(options: SyncOptions) -> PassReport:
    from .sync_passes import PassReport

    organizations = Organization.objects.filter(deleted_at__isnull=True).order_by("pk")
    if options.organization is not None:
        organizations = organizations.filter(pk=options.organization.pk)
    lines, changed, sent, rejected, failed, counted = [], 0, 0, 0, [], 0
    for organization_id in organizations.values_list("pk", flat=True):
        if options.dry_run:
            organization = Organization.objects.get(pk=organization_id)
            if wanted_limit(organization) != organization.seat_limit:
                lines.append(f"would change the limit of {organization_id} to {wanted_limit(organization)}")
            continue
        with transaction.atomic():
            changed += refresh_limit(Organization.objects.locked().get(pk=organization_id))
        options.progress("seat limits", changed)
    if not options.dry_run:
        for organization_id in organizations.filter(seat_limit_status=SeatLimitStatus.PENDING).values_list(
            "pk", flat=True
        ):
            status = send_limit(organization_id)
            sent += status == SeatLimitStatus.CONFIRMED
            rejected += status == SeatLimitStatus.REJECTED
            if status != SeatLimitStatus.CONFIRMED:
                lines.append(f"limit {status}: {organization_id}")
    directory = directory_mode()
    to_count = organizations
    if options.since is not None and not directory:  # the directory's listing filters by update time itself
        to_count = organizations.filter(Q(seats_stale_since__isnull=False) | Q(seats_counted_at__isnull=True))
    for organization_id in [] if options.dry_run else to_count.values_list("pk", flat=True):
        try:
            if directory:
                lines += sync_directory(organization_id, since=options.since)
            else:
                count_members(organization_id)
            counted += 1
        except ScalekitError as error:
            failed.append(organization_id)
            lines.append(f"not counted: {organization_id}: {error}")
        options.progress("seat counts", counted)
    summary = (
        f"seats: limits changed {changed}, sent {sent}, rejected {rejected}, counted {counted}, failed {len(failed)}"
    )
    unsent = sum(line.startswith("limit pending") for line in lines)
    problems = [f"{unsent} limits could not be sent"] * bool(unsent) + [
        f"{len(failed)} organizations could not be counted"
    ] * bool(failed)
    problem = "; ".join(problems)
    return PassReport(summary, lines, problem)
