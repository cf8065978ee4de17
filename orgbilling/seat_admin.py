"""The seat parts of the organizations admin: filters, the seats column, and what the recount action runs."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest

from .models import Organization, SeatLimitStatus
from .scalekit_management import ScalekitError
from .seat_counts import count_members
from .seat_limits import send_limit


class AtSeatLimit(admin.SimpleListFilter):
    title = "seats"
    parameter_name = "seats"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("full", "at or over the limit")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Organization]) -> QuerySet[Organization]:
        if self.value() != "full":
            return queryset
        taken = F("seats_used") + F("seats_pending")
        return queryset.filter(seat_limit__isnull=False, seats_used__isnull=False, seat_limit__lte=taken)


class SeatLimitState(admin.SimpleListFilter):
    title = "seat limit in Scalekit"
    parameter_name = "seat_limit"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("unconfirmed", "unconfirmed or rejected"), ("rejected", "rejected")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Organization]) -> QuerySet[Organization]:
        if self.value() == "unconfirmed":
            return queryset.filter(
                Q(seat_limit_status=SeatLimitStatus.PENDING) | Q(seat_limit_status=SeatLimitStatus.REJECTED)
            )
        if self.value() == "rejected":
            return queryset.filter(seat_limit_status=SeatLimitStatus.REJECTED)
        return queryset


def seats_column(organization: Organization) -> str:
    """ "4 / 5" (used and pending / limit); "-" before the first count, "no cap" without a limit."""
    taken = "-" if organization.seats_taken is None else str(organization.seats_taken)
    return f"{taken} / {'no cap' if organization.seat_limit is None else organization.seat_limit}"


def recount_and_send(organization: Organization) -> tuple[bool, dict[str, str]]:
    """Count the members again and send the stored limit again (a rejected one too); (ok, what happened)."""
    Organization.objects.filter(pk=organization.pk, seat_limit_status=SeatLimitStatus.REJECTED).update(
        seat_limit_status=SeatLimitStatus.PENDING
    )
    try:
        count = count_members(organization.pk)
    except ScalekitError as exc:
        return False, {"error": str(exc)}
    status = send_limit(organization.pk)
    answer = {"used": str(count.used), "pending": str(count.pending), "limit": str(status)}
    return status in (SeatLimitStatus.CONFIRMED, SeatLimitStatus.UNSET), answer
