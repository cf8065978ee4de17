"""The audit trail: who asked for which billing change, and what came back.

Chargebee only ever sees this site's API key, so "who cut our seats?" is
answered here. A row is written for every billing action that reached
Chargebee (subscribe, change, cancel, keep, pay dues, portal) and every staff
action (resync, replay). Refusals that stop before Chargebee (401, 403, 400,
409, 429) change nothing and are not recorded: anyone signed in could
otherwise write rows without limit, since they come before the throttle.

Rows name the organization by its id only: the column has no database
constraint and deleting an organization leaves its trail in place. The ORM
relation exists so the admin can show the trail inline on the organization.

Nothing secret is recorded: callers name the arguments and the parts of the
answer that go in (never hosted-page ids or URLs, portal URLs or tokens).

Writing a row never fails the action it describes. By the time the outcome is
known Chargebee has acted (a hosted page is open, a subscription changed):
answering an error then would hide a real change and invite a second try. A
row that cannot be written (the audit table missing, the database refusing
it) is logged at ERROR with the same fields instead, so the trail survives in
the logs and the failure is alerted on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from .errors import BillingProblem

if TYPE_CHECKING:
    from .middleware import BillingContext

logger = logging.getLogger(__name__)

MAX_TEXT = 200  # longest string kept from a request: a client can send anything as a plan id

Service = TypeVar("Service", bound=Callable[..., Any])


class AuditEvent(models.Model):
    class Outcome(models.TextChoices):
        DONE = "done"  # Chargebee (or the replayed handler) answered and the action completed
        FAILED = "failed"  # Chargebee refused or failed; nothing changed
        ERROR = "error"  # an unexpected exception in this site's code

    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=50, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    # A plain string column (no constraint, nothing cascades): the trail outlives the organization.
    organization = models.ForeignKey(
        "orgbilling.Organization",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name="organization id",
    )
    user_id = models.CharField("Scalekit user id", max_length=255, blank=True)
    email = models.CharField(max_length=255, blank=True)
    staff_user = models.CharField("staff member", max_length=150, blank=True, db_index=True)
    asked = models.JSONField("what was asked", default=dict, blank=True, encoder=DjangoJSONEncoder)
    answer = models.JSONField("what came back", default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        app_label = "orgbilling"
        ordering = ["-at", "-id"]
        verbose_name = "audit event"

    def __str__(self) -> str:
        who = self.staff_user or self.email or self.user_id or "?"
        return f"{self.action} by {who} ({self.outcome})"


def _plain(value: Any) -> Any:
    """A JSON-safe, bounded copy of a value a client sent."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def record(
    action: str,
    *,
    outcome: str = AuditEvent.Outcome.DONE,
    organization_id: str = "",
    user_id: str = "",
    email: str = "",
    staff_user: str = "",
    asked: dict[str, Any] | None = None,
    answer: dict[str, Any] | None = None,
) -> AuditEvent | None:
    """Write one audit row; on failure log it at ERROR and return None (never raise)."""
    fields = {
        "action": action,
        "outcome": outcome,
        "organization_id": organization_id or None,
        "user_id": user_id,
        "email": email,
        "staff_user": staff_user,
        "asked": {key: _plain(value) for key, value in (asked or {}).items()},
        "answer": {key: _plain(value) for key, value in (answer or {}).items()},
    }
    try:
        with transaction.atomic():  # a savepoint: a failed insert leaves a caller's transaction usable
            return AuditEvent.objects.create(**fields)
    except Exception:  # noqa: BLE001  the action happened; the trail goes to the log instead
        logger.exception("audit event not written: %s", fields)
        return None


def record_staff(user: AbstractBaseUser, action: str, **fields: Any) -> AuditEvent | None:
    """Record a staff action (resync, replay) with the Django user who took it."""
    return record(action, staff_user=user.get_username(), email=getattr(user, "email", "") or "", **fields)


def billing_action(
    action: str, *, asked: Sequence[str] = (), answer: Callable[[Any], dict[str, Any]] | None = None
) -> Callable[[Service], Service]:
    """Record each call of a billing service ``service(context, **choices)`` that reaches Chargebee.

    ``asked`` names the keyword arguments to record (the user's choices);
    ``answer`` summarizes the return value. Both default to nothing, so a
    secret is only recorded if a caller names it. A ``BillingProblem`` under
    500 is a refusal before Chargebee and is not recorded; one of 500 and over
    (Chargebee failed) is, as ``failed``; any other exception as ``error``.
    """

    def decorate(service: Service) -> Service:
        @wraps(service)
        def wrapped(context: BillingContext | None, **choices: Any) -> Any:
            def write(outcome: str, result: dict[str, Any]) -> None:
                record(
                    action,
                    outcome=outcome,
                    organization_id=context.organization_id if context else "",
                    user_id=context.user_id if context else "",
                    email=context.email if context else "",
                    asked={name: choices.get(name) for name in asked},
                    answer=result,
                )

            try:
                value = service(context, **choices)
            except BillingProblem as problem:
                if problem.status >= 500:
                    write(AuditEvent.Outcome.FAILED, {"status": problem.status, "message": problem.message})
                raise
            except Exception as exc:
                write(AuditEvent.Outcome.ERROR, {"exception": type(exc).__name__})
                raise
            write(AuditEvent.Outcome.DONE, answer(value) if answer else {})
            return value

        return wrapped  # type: ignore[return-value]

    return decorate
