"""Billing state kept locally: organizations, their subscriptions, and every webhook delivery.

The Scalekit organization id is the single billing reference: it is the
``Organization`` primary key, the ``reference_id`` column of every subscription
and the ``organizationId`` in the Chargebee customer's meta_data.
"""

from __future__ import annotations

import json
import uuid

from django.db import models
from django.utils import timezone

from .statuses import ENTITLING

ACTIVE_STATUSES = ENTITLING  # the statuses that entitle (orgbilling.statuses has the whole table)
MAX_HOSTED_PAGES = 10


def new_subscription_id() -> str:
    """A local id short enough (36 chars) to be sent to Chargebee as the subscription id."""
    return f"sub_{uuid.uuid4().hex}"


class Organization(models.Model):
    id = models.CharField("Scalekit organization id", max_length=64, primary_key=True)
    display_name = models.CharField(max_length=255, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    chargebee_customer_id = models.CharField(max_length=50, unique=True, null=True, blank=True)
    # Scalekit's data.update_time of the last organization event applied; older events are skipped.
    scalekit_update_time = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name", "id"]

    def __str__(self) -> str:
        return self.display_name or self.id

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def subscribed(self, plan_id: str | None = None) -> bool:
        """True when the organization has an active subscription (optionally to ``plan_id``)."""
        subscriptions = self.subscriptions.filter(status__in=ACTIVE_STATUSES)
        if plan_id is not None:
            subscriptions = subscriptions.filter(plan_id=plan_id)
        return subscriptions.exists()

    def seat_limit(self) -> int:
        """How many seats the organization may use: those of its entitling subscriptions (0 without one)."""
        return self.subscriptions.filter(status__in=ACTIVE_STATUSES).aggregate(seats=models.Sum("seats"))["seats"] or 0


class Subscription(models.Model):
    class Status(models.TextChoices):
        # "future" is also the status of the local row written before checkout.
        FUTURE = "future"
        IN_TRIAL = "in_trial"
        ACTIVE = "active"
        NON_RENEWING = "non_renewing"
        PAUSED = "paused"
        CANCELLED = "cancelled"
        TRANSFERRED = "transferred"

    id = models.CharField(max_length=50, primary_key=True, default=new_subscription_id, editable=False)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        related_name="subscriptions",
        db_column="reference_id",
        db_index=True,
    )
    chargebee_customer_id = models.CharField(max_length=50, blank=True)
    chargebee_subscription_id = models.CharField(max_length=50, unique=True, null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.FUTURE)
    plan_id = models.CharField("plan (item price id)", max_length=100, blank=True)
    seats = models.PositiveIntegerField(default=1)
    # Every subscription item as Chargebee lists it: [{"item_price_id", "item_type", "quantity"}].
    items = models.JSONField(default=list, blank=True)
    trial_start = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Chargebee's resource_version (ms) of the last snapshot applied: the ordering guard.
    resource_version = models.BigIntegerField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The hosted pages opened for this row, newest last: the success redirect only ever retrieves one
    # of these, so a tenant cannot make the server fetch (or apply) a page it did not open.
    hosted_page_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"], name="orgbilling_sub_org_status")]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_active(self) -> bool:
        """Whether the subscription grants entitlements right now."""
        return self.status in ACTIVE_STATUSES

    def remember_hosted_page(self, page_id: str) -> None:
        """Record a hosted page opened for this row (two tabs may each have one open)."""
        self.hosted_page_ids = [*self.hosted_page_ids, page_id][-MAX_HOSTED_PAGES:]
        self.save(update_fields=["hosted_page_ids", "updated_at"])


class WebhookDelivery(models.Model):
    """One vendor event as received: the raw body is kept so it can be replayed.

    The log is separate from processing (as in dj-stripe): a delivery is
    recorded first, then processed, and a failed one keeps its error until a
    vendor retry or a replay heals it.
    """

    class Vendor(models.TextChoices):
        SCALEKIT = "scalekit"
        CHARGEBEE = "chargebee"

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        IGNORED = "ignored"
        FAILED = "failed"

    vendor = models.CharField(max_length=20, choices=Vendor.choices)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=255)
    body = models.TextField()
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Queue mode: when the retry of a failed delivery is due; None when none is scheduled.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "event_id"], name="orgbilling_delivery_unique_event"),
        ]
        permissions = [("replay_webhookdelivery", "Can replay webhook deliveries and resync billing")]

    def __str__(self) -> str:
        return f"{self.vendor} {self.event_type} {self.event_id}"

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    @property
    def is_done(self) -> bool:
        return self.status in (self.Status.PROCESSED, self.Status.IGNORED)
