"""Billing state kept locally: organizations, their subscriptions, and every webhook delivery.

The Scalekit organization id is the single billing reference: it is the
``Organization`` primary key, the ``reference_id`` column of every subscription
and the ``organizationId`` in the Chargebee customer's meta_data.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import conf
from .audit import AuditEvent  # noqa: F401  defined beside its recorder; imported here to register it
from .statuses import ENTITLING

ACTIVE_STATUSES = ENTITLING  # the statuses that entitle (orgbilling.statuses has the whole table)
ENTITLING_STATUSES = ENTITLING  # the name the seat limit reads


def new_subscription_id() -> str:
    """A local id short enough (36 chars) to be sent to Chargebee as the subscription id."""
    return f"sub_{uuid.uuid4().hex}"


class LockingQuerySet(models.QuerySet):
    def locked(self, **options) -> models.QuerySet:
        """Rows locked for the rest of the transaction, ``FOR NO KEY UPDATE`` on PostgreSQL.

        These locks serialize orgbilling's own writes to a row and never change
        its key, so they need not block the ``FOR KEY SHARE`` check of an insert
        that references the row. A plain ``FOR UPDATE`` does: parallel
        checkouts deadlocked, an opened page's insert against the lock another
        checkout held on its organization.
        """
        return self.select_for_update(no_key=True, **options)


class SeatLimitStatus(models.TextChoices):
    UNSET = "unset", "never set (no cap wanted)"
    PENDING = "pending", "waiting for Scalekit"
    CONFIRMED = "confirmed", "confirmed by Scalekit"
    REJECTED = "rejected", "rejected by Scalekit"


class Organization(models.Model):
    id = models.CharField("Scalekit organization id", max_length=64, primary_key=True)
    display_name = models.CharField(max_length=255, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    chargebee_customer_id = models.CharField(max_length=50, unique=True, null=True, blank=True)
    # The idempotency key of the customer creation, recorded before the call so a retry after a crash
    # sends the same one and Chargebee answers it with the customer the first call made.
    customer_request_key = models.CharField(max_length=64, blank=True, editable=False)
    # Scalekit's data.update_time of the last organization event applied; older events are skipped.
    scalekit_update_time = models.DateTimeField(null=True, blank=True)
    # resource_version of the Chargebee customer last seen (checkout, customer events, sync): a
    # customer_deleted about an older customer is stale and changes nothing.
    chargebee_customer_version = models.BigIntegerField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # --- Seats (orgbilling.seats). The cap Scalekit should enforce, stored with the change that caused it
    # and sent after commit; None is "no cap" (sent as 0). The version orders concurrent sends.
    seat_limit = models.PositiveIntegerField(null=True, blank=True)
    seat_limit_version = models.PositiveBigIntegerField(default=0)
    seat_limit_status = models.CharField(
        max_length=20, choices=SeatLimitStatus.choices, default=SeatLimitStatus.UNSET, db_index=True
    )
    seat_limit_confirmed_at = models.DateTimeField("limit confirmed by Scalekit", null=True, blank=True)
    seat_limit_error = models.CharField(max_length=255, blank=True)
    # Members counted from Scalekit's list: ACTIVE, and PENDING_INVITE (None: never counted).
    seats_used = models.PositiveIntegerField(null=True, blank=True)
    seats_pending = models.PositiveIntegerField(null=True, blank=True)
    seats_counted_at = models.DateTimeField(null=True, blank=True)
    # A membership event arrived after the last count (the count is stale until the next one).
    seats_stale_since = models.DateTimeField(null=True, blank=True)
    # When a recount was last queued or started: one at a time per organization, however many events arrive.
    seats_recount_claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LockingQuerySet.as_manager()

    class Meta:
        ordering = ["display_name", "id"]
        # Support staff's admin actions, each granted on its own (the admin itself is read-only).
        permissions = [
            ("resync_organization", "Can resync organizations from Chargebee"),
            ("open_in_chargebee", "Can open customers and subscriptions in Chargebee's dashboard"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.id

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def seats_taken(self) -> int | None:
        """Members plus pending invites, as Scalekit counts them against the cap; None when never counted."""
        if self.seats_used is None:
            return None
        return self.seats_used + (self.seats_pending or 0)

    @property
    def at_seat_limit(self) -> bool:
        """True when no one else can join: the members counted fill (or exceed) the limit."""
        return self.seat_limit is not None and self.seats_taken is not None and self.seats_taken >= self.seat_limit

    def subscribed(self, plan_id: str | None = None) -> bool:
        """True when the organization has an active subscription (optionally to ``plan_id``).

        A past-due one counts for ``ORGBILLING_PAST_DUE_GRACE_DAYS`` after ``due_since``, then
        not until its dues are paid: one query still, the grace is a condition of it.
        """
        subscriptions = self.subscriptions.filter(status__in=ACTIVE_STATUSES).filter(in_good_standing())
        if plan_id is not None:
            subscriptions = subscriptions.filter(plan_id=plan_id)
        return subscriptions.exists()


class CancelReason(models.TextChoices):
    # A subscription that appeared for a deleted organization: cancelled with a full refund.
    ORGANIZATION_DELETED = "organization_deleted", "organization deleted"


def grace_cutoff() -> datetime:
    """Dues older than this have used up their grace period."""
    return timezone.now() - timedelta(days=conf.get("ORGBILLING_PAST_DUE_GRACE_DAYS"))


def in_good_standing() -> Q:
    """Subscriptions with no dues, or dues still within the grace period."""
    return Q(due_invoices_count=0) | Q(due_since__isnull=True) | Q(due_since__gt=grace_cutoff())


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
    # Every subscription item as Chargebee lists it: [{"item_price_id", "item_type", "quantity", "unit_price"?}].
    items = models.JSONField(default=list, blank=True)
    trial_start = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Chargebee's resource_version (ms) of the last snapshot applied: the ordering guard.
    resource_version = models.BigIntegerField(null=True, blank=True)
    # Past due, from the snapshot: unpaid invoices, their total (minor units of currency), since when.
    currency = models.CharField(max_length=3, blank=True)
    due_invoices_count = models.PositiveIntegerField(default=0)
    total_dues = models.BigIntegerField(default=0)
    due_since = models.DateTimeField(null=True, blank=True)
    # When grace_period_ended was sent for the current dues (cleared once they are paid).
    grace_period_ended_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Why orgbilling cancelled (or is cancelling) it in Chargebee itself; empty for Chargebee's own reasons.
    cancel_reason = models.CharField(max_length=30, choices=CancelReason.choices, blank=True)
    next_billing_at = models.DateTimeField(null=True, blank=True)
    # Chargebee's renewal_estimate (amount due at next_billing_at, minor units), fetched after a change or renewal
    # and never during a page request; renewal_estimate_version is the resource_version it was made for.
    renewal_amount = models.BigIntegerField(null=True, blank=True)
    renewal_estimated_at = models.DateTimeField(null=True, blank=True)
    renewal_estimate_version = models.BigIntegerField(null=True, blank=True)
    # The resource_version whose fetch failed last: queue mode's sweeps pass the row over until it changes again
    # (an outage costs one call per change, not one per sweep); orgbilling_sync --renewal-estimates retries it.
    renewal_estimate_failed_version = models.BigIntegerField(null=True, blank=True)
    # A decrease or downgrade waiting for term end (Chargebee's has_scheduled_changes), with what orgbilling asked
    # for: {"plan_id", "seats", "effective_at"} (ISO time); empty when Chargebee has none.
    has_scheduled_changes = models.BooleanField(default=False)
    scheduled_change = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LockingQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"], name="orgbilling_sub_org_status")]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def entitles(self) -> bool:
        """Whether the subscription's status grants entitlements (and seats)."""
        return self.status in ENTITLING_STATUSES

    @property
    def is_active(self) -> bool:
        """Whether the subscription grants entitlements right now: past due, only until its grace runs out."""
        return self.entitles and not self.grace_used_up

    @property
    def is_past_due(self) -> bool:
        return self.due_invoices_count > 0

    @property
    def grace_ends(self) -> datetime | None:
        if not self.is_past_due or self.due_since is None:
            return None
        return self.due_since + timedelta(days=conf.get("ORGBILLING_PAST_DUE_GRACE_DAYS"))

    @property
    def grace_used_up(self) -> bool:
        """Past due for longer than the grace period: no entitlements until the dues are paid."""
        ends = self.grace_ends
        return ends is not None and ends <= timezone.now()

    def state(self) -> str:
        """The status with the reason orgbilling cancelled it, e.g. "cancelled: organization deleted"."""
        if not self.cancel_reason:
            return self.get_status_display()
        reason = self.get_cancel_reason_display()
        return f"{self.status}: {reason}" if self.status == self.Status.CANCELLED else f"cancelling: {reason}"

    state.short_description = "status"


class OpenedPage(models.Model):
    """A Chargebee hosted page or portal session opened here, one row each (so none is ever lost).

    The success redirect only retrieves a page recorded here, so nobody can make the server fetch
    (or apply) a page it did not open; ``returned_at`` makes a return cost one Chargebee call at most.
    """

    class Kind(models.TextChoices):
        CHECKOUT = "checkout"
        CHANGE = "change"
        PORTAL = "portal"
        PAY = "pay"  # collect_now: paying the dues
        PAYMENT_METHOD = "payment_method"  # manage_payment_sources: replacing the card

    vendor_id = models.CharField("hosted page or portal session id", max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="opened_pages")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, null=True, blank=True, related_name="opened_pages"
    )
    user_id = models.CharField(max_length=255, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    returned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "kind", "user_id"], name="orgbilling_page_org_kind_user")]

    def __str__(self) -> str:
        return f"{self.kind} page of {self.organization_id}"


class ThrottleCounter(models.Model):
    """The throttle's cross-process counter when no Redis is configured: one row per key and window."""

    key = models.CharField(max_length=255, primary_key=True)
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


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
    # Queue mode: the one task queued for this delivery and when it is due; None when none is.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    task_id = models.UUIDField(null=True, blank=True, editable=False)
    # The attempt in progress: who runs it, its token, and until when it may run. A lease that
    # runs out with no outcome recorded is a lost attempt (worker killed, connection dropped).
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_token = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "event_id"], name="orgbilling_delivery_unique_event"),
        ]
        permissions = [("replay_webhookdelivery", "Can replay webhook deliveries")]

    def __str__(self) -> str:
        return f"{self.vendor} {self.event_type} {self.event_id}"

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    @property
    def is_done(self) -> bool:
        return self.status in (self.Status.PROCESSED, self.Status.IGNORED)

    def leased(self, now: datetime) -> bool:
        """Whether an attempt is running and may still finish."""
        return self.lease_until is not None and self.lease_until > now


class DirectoryUser(models.Model):
    """A user of the organization's directory (SCIM), for apps that keep their own users (seat source "directory").

    One row per directory user, kept after deletion so an older event cannot bring it back: ``event_time`` (ns)
    is that of the newest event or listing applied. A user who wants a seat (active, not deleted) either holds one
    or is ``blocked`` (over the limit), and blocked users are released in ``arrived_at`` order.
    """

    id = models.CharField("directory user id", max_length=64, primary_key=True)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="directory_users")
    email = models.CharField(max_length=255, blank=True)
    active = models.BooleanField(default=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    blocked = models.BooleanField(default=False, db_index=True)
    arrived_at = models.DateTimeField(null=True, blank=True)
    event_time = models.BigIntegerField(default=0)
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "arrived_at", "id"]

    def __str__(self) -> str:
        return self.email or self.id

    @property
    def wants_seat(self) -> bool:
        return self.active and self.deleted_at is None


class JobLock(models.Model):
    """Who holds a job that must not run twice at once (``orgbilling_sync``), and until when.

    A lease rather than a flag: a run that dies leaves a lock that expires by itself, and a
    live run renews it as it goes. Plain rows, so it works the same on SQLite and PostgreSQL.
    """

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=255, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class JobRecord(models.Model):
    """The latest outcome of a recurring job (a sync pass, a vendor check): what orgbilling_health reads."""

    name = models.CharField(max_length=100, primary_key=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_succeeded_at = models.DateTimeField(null=True, blank=True)
    # Runs that also looked for what is gone (not --since): only those find local orphans.
    last_full_succeeded_at = models.DateTimeField(null=True, blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_summary = models.TextField(blank=True)
    # What the job found, for checks whose findings are shown later (the admin index makes no vendor call).
    findings = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def failing(self) -> bool:
        """The latest run failed (no success since)."""
        return self.last_failed_at is not None and (
            self.last_succeeded_at is None or self.last_failed_at > self.last_succeeded_at
        )


class Invoice(models.Model):
    """A Chargebee invoice, mirrored so the billing page lists them without calling Chargebee.

    Kept after the subscription ends (an organization's invoices outlive it);
    one deleted in Chargebee stays as a tombstone (``deleted_at``) so a late,
    older event cannot bring it back, and is never listed.
    """

    class Status(models.TextChoices):
        PAID = "paid"
        POSTED = "posted"
        PAYMENT_DUE = "payment_due"
        NOT_PAID = "not_paid"
        VOIDED = "voided"
        PENDING = "pending"

    id = models.CharField("Chargebee invoice id", max_length=50, primary_key=True)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="invoices")
    # Linked once the subscription is known locally; Chargebee's id is kept to link it when it arrives.
    subscription = models.ForeignKey(
        Subscription, on_delete=models.SET_NULL, null=True, blank=True, related_name="invoices"
    )
    chargebee_subscription_id = models.CharField(max_length=50, blank=True, db_index=True)
    chargebee_customer_id = models.CharField(max_length=50)
    status = models.CharField(max_length=20, choices=Status.choices)
    date = models.DateTimeField(null=True, blank=True)
    due_date = models.DateTimeField(null=True, blank=True)
    # Amounts in the currency's minor unit (cents), as Chargebee sends them.
    total = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    amount_due = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    dunning_status = models.CharField(max_length=20, blank=True)
    resource_version = models.BigIntegerField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date", "-id"]
        indexes = [models.Index(fields=["organization", "-date"], name="orgbilling_inv_org_date")]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_void(self) -> bool:
        return self.status == self.Status.VOIDED


class BillingProfile(models.Model):
    """The organization's card on file and billing details, as its Chargebee customer has them.

    A row of its own (joined, never a query of its own, where notices need it) so the
    organization row stays what Scalekit says. Each half has its own ordering guard: the
    payment source's ``resource_version`` and the customer's.
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="billing_profile"
    )
    # The customer's primary payment source.
    payment_source_id = models.CharField(max_length=50, blank=True)
    payment_type = models.CharField(max_length=40, blank=True)  # card, direct_debit, paypal_express_checkout, ...
    payment_status = models.CharField(max_length=30, blank=True)  # valid, expiring, expired, invalid, ...
    card_brand = models.CharField(max_length=30, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_expiry_month = models.PositiveSmallIntegerField(null=True, blank=True)
    card_expiry_year = models.PositiveSmallIntegerField(null=True, blank=True)
    payment_source_version = models.BigIntegerField(null=True, blank=True)
    # Billing details for B2B invoices, from the customer (billing_address, vat_number).
    company = models.CharField(max_length=250, blank=True)
    billing_email = models.CharField(max_length=70, blank=True)
    vat_number = models.CharField(max_length=20, blank=True)
    billing_address = models.JSONField(default=dict, blank=True)  # line1, line2, city, state, zip, country
    customer_version = models.BigIntegerField(null=True, blank=True)
    # The customer's card_status (valid, expiring, expired, invalid, no_card, pending_verification): a change is
    # charged to the card on file only when it is valid or expiring, else it goes through the hosted page.
    card_status = models.CharField(max_length=30, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"billing profile of {self.organization_id}"

    @property
    def has_card(self) -> bool:
        return bool(self.payment_source_id)


class ItemPrice(models.Model):
    """A Chargebee plan item price, mirrored so plan cards show prices without calling Chargebee.

    ``ORGBILLING_PLANS`` says which ones are offered; everything else about the
    price (amount, period, tiers, trial) comes only from here. A price deleted in
    Chargebee stays as a tombstone (``deleted_at``) so a late, older event cannot
    bring it back; subscriptions on it still show its name and price.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        ARCHIVED = "archived"
        DELETED = "deleted"

    id = models.CharField("Chargebee item price id", max_length=100, primary_key=True)
    item_id = models.CharField(max_length=100, blank=True)
    external_name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    currency = models.CharField(max_length=3)
    # Minor units of currency; per unit for per_unit, the whole price for flat_fee, unused for tiered models.
    price = models.BigIntegerField(null=True, blank=True)
    pricing_model = models.CharField(max_length=20)  # flat_fee, per_unit, tiered, volume, stairstep
    # [{"starting_unit", "ending_unit" (None for the last), "price"}], as Chargebee lists them.
    tiers = models.JSONField(default=list, blank=True)
    period = models.PositiveIntegerField(default=1)
    period_unit = models.CharField(max_length=10)  # day, week, month, year
    trial_period = models.PositiveIntegerField(null=True, blank=True)
    trial_period_unit = models.CharField(max_length=10, blank=True)  # day, month
    resource_version = models.BigIntegerField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_available(self) -> bool:
        """Whether Chargebee still sells it (active, not deleted)."""
        return self.status == self.Status.ACTIVE and self.deleted_at is None


def new_preview_id() -> str:
    """An unguessable id: a preview is confirmed by it alone (with the session's organization and user)."""
    return f"chp_{uuid.uuid4().hex}"


def new_request_key() -> str:
    return uuid.uuid4().hex


class ChangePreview(models.Model):
    """A plan or seat change as Chargebee estimated it, waiting for the billing manager's "Confirm".

    ``params`` are exactly what the estimate was made with and what ``update_for_items`` is sent on
    confirm; ``request_key`` is that call's idempotency key, so a repeated confirm changes once. A
    preview is good for ``orgbilling.changes.PREVIEW_LIFETIME`` and for the subscription
    ``resource_version`` it was made at. Amounts are in the currency's minor unit.
    """

    class State(models.TextChoices):
        PREVIEWED = "previewed"
        APPLYING = "applying"  # confirmed: the call is made now, or again with the same key after a failure
        APPLIED = "applied"
        HOSTED = "hosted"  # the payment needs the customer: sent to Chargebee's hosted page
        FAILED = "failed"  # declined or refused by Chargebee; the subscription shows what Chargebee has

    id = models.CharField(max_length=40, primary_key=True, default=new_preview_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="change_previews")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="change_previews")
    user_id = models.CharField(max_length=255, blank=True)
    plan_id = models.CharField(max_length=100)
    seats = models.PositiveIntegerField()
    increase = models.BooleanField(help_text="charged now (prorated); otherwise it waits for the term's end")
    params = models.JSONField(default=dict)
    request_key = models.CharField(max_length=64, default=new_request_key, editable=False)
    subscription_version = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    amount_due_now = models.BigIntegerField(default=0)
    credits = models.BigIntegerField(default=0)
    next_billing_at = models.DateTimeField(null=True, blank=True)
    next_amount = models.BigIntegerField(null=True, blank=True)
    # [{"description", "quantity", "amount", "dateFrom", "dateTo"}] of the invoice charged now
    lines = models.JSONField(default=list, blank=True)
    effective_at = models.DateTimeField(null=True, blank=True)  # when a change at term end takes effect
    state = models.CharField(max_length=20, choices=State.choices, default=State.PREVIEWED)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)  # what the confirm came to, shown again on a repeat

    class Meta:
        indexes = [models.Index(fields=["organization", "created_at"], name="orgbilling_preview_org_at")]

    def __str__(self) -> str:
        return f"{self.id} ({self.state})"
