"""The passes of ``orgbilling_sync``: one per mirror, each with its own flag.

A pass is a name (its flag is ``--<name>``), a check that its vendor is
configured, and a function from ``SyncOptions`` to a ``PassReport``. Runs
without a flag choose every pass, in this order (organizations before the
subscriptions that need them). A later mirror (prices, invoices, payment
methods, seats) adds its pass with ``register`` below and its row in the
README's table of API calls per pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from . import conf
from .chargebee_gateway import ChargebeeError
from .mirror_sync import PassSummary, sync_invoices, sync_payment_sources
from .models import Organization
from .organization_sync import sync_organizations
from .payment_health import end_grace_periods
from .prices import sync_item_prices
from .reconcile import sync_subscriptions
from .renewal_estimates import sync_estimates
from .seat_sync import sync_seats


@dataclass(frozen=True)
class SyncOptions:
    dry_run: bool = False
    since: datetime | None = None  # None: a full run, which also looks for what is gone
    delete_missing: bool = False
    organization: Organization | None = None
    progress: Callable[[str, int], None] = lambda unit, done: None  # also renews the run's lease


@dataclass
class PassReport:
    summary: str  # one line of counts
    lines: list[str] = field(default_factory=list)  # each thing an operator should look at
    problem: str = ""  # why the pass failed ("" when it succeeded)


@dataclass(frozen=True)
class SyncPass:
    name: str
    help: str
    run: Callable[[SyncOptions], PassReport]
    missing_settings: Callable[[], list[str]]  # the settings it still needs; [] when ready


PASSES: dict[str, SyncPass] = {}


def register(sync_pass: SyncPass) -> SyncPass:
    PASSES[sync_pass.name] = sync_pass
    return sync_pass


def _unset(*names: str) -> Callable[[], list[str]]:
    return lambda: [name for name in names if not conf.get(name)]


def _scalekit(options: SyncOptions) -> PassReport:
    summary = sync_organizations(
        organization=options.organization,
        dry_run=options.dry_run,
        find_gone=options.since is None,
        delete_missing=options.delete_missing,
        progress=lambda done: options.progress("organizations", done),
    )
    would = "would be " if options.dry_run else ""
    lines = [f"{would}provisioned: {organization_id}" for organization_id in summary.provisioned]
    lines += [f"{would}updated: {organization_id}" for organization_id in summary.updated]
    lines += [
        f"deleted here, still listed by Scalekit (not provisioned again): {organization_id}"
        for organization_id in summary.deleted_here
    ]
    lines += [f"gone from Scalekit (404): {organization_id}" for organization_id in summary.gone]
    lines += [f"{would}deleted like organization.deleted: {organization_id}" for organization_id in summary.deleted]
    lines += [f"failed: {failure}" for failure in summary.failed]
    problem = ""
    if summary.error:
        problem = f"listing stopped after {summary.listed} organizations, nothing called gone: {summary.error}"
    elif summary.failed:
        problem = f"{len(summary.failed)} organizations could not be synced"
    return PassReport(str(summary), lines, problem)


def _chargebee(options: SyncOptions) -> PassReport:
    try:
        summary = sync_subscriptions(
            organization=options.organization,
            dry_run=options.dry_run,
            since=options.since,
            progress=lambda done: options.progress("subscriptions", done),
        )
    except ChargebeeError as exc:
        return PassReport("stopped", problem=f"sync stopped: {exc}")
    lines = [f"orphaned in Chargebee (no known organization): {sub_id}" for sub_id in summary.orphaned_in_chargebee]
    lines += [f"orphaned locally (gone from Chargebee): {sub_id}" for sub_id in summary.orphaned_locally]
    lines += [f"failed (unreadable snapshot, see the log): {sub_id}" for sub_id in summary.failed]
    lines += [f"repaired (Chargebee's copy replaced a local-only change): {sub_id}" for sub_id in summary.repaired]
    verb = "would cancel" if options.dry_run else "cancelled"
    lines += [f"{verb} with a full refund (organization deleted): {row}" for row in summary.cancelled_for_deleted]
    lines += [f"cancellation failed, retried next run (organization deleted): {row}" for row in summary.cancel_failed]
    problems = [f"{len(summary.failed)} subscriptions could not be applied"] if summary.failed else []
    if summary.cancel_failed:
        problems.append(f"{len(summary.cancel_failed)} subscriptions of deleted organizations are still billed")
    return PassReport(str(summary), lines, "; ".join(problems))


register(
    SyncPass(
        "scalekit",
        "organizations from Scalekit's list (provision missing ones, apply newer names, report gone ones)",
        _scalekit,
        _unset("SCALEKIT_ENV_URL", "SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET"),
    )
)
register(
    SyncPass(
        "chargebee",
        "subscriptions from Chargebee's list (with --since, only those changed since)",
        _chargebee,
        _unset("CHARGEBEE_API_KEY"),
    )
)
register(
    SyncPass(
        "seats",
        "seat limits (work out each one, send those Scalekit has not confirmed) and members counted from Scalekit "
        "(with --since, only counts made stale by a membership event)",
        sync_seats,
        _unset("SCALEKIT_ENV_URL", "SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET"),
    )
)


def _mirror(run: Callable[..., PassSummary], unit: str) -> Callable[[SyncOptions], PassReport]:
    """A pass over a list of Chargebee objects applied through their mirror (invoices, payment sources)."""

    def run_pass(options: SyncOptions) -> PassReport:
        organization = options.organization
        customer_id = (organization.chargebee_customer_id or organization.id) if organization else None
        try:
            summary = run(
                since=options.since,
                customer_id=customer_id,
                dry_run=options.dry_run,
                progress=lambda done: options.progress(unit, done),
            )
        except ChargebeeError as exc:
            return PassReport("stopped", problem=f"sync stopped: {exc}")
        lines = [f"failed (unreadable, see the log): {object_id}" for object_id in summary.failed]
        problem = f"{len(summary.failed)} {unit} could not be applied" if summary.failed else ""
        return PassReport(str(summary), lines, problem)

    return run_pass


def _prices(options: SyncOptions) -> PassReport:
    """The plan catalog (one list for every organization), and the offered prices it lacks."""
    from .plans import unavailable

    try:
        summary = sync_item_prices(
            since=options.since, dry_run=options.dry_run, progress=lambda done: options.progress("item prices", done)
        )
    except ChargebeeError as exc:
        return PassReport("stopped", problem=f"sync stopped: {exc}")
    would = "would be " if options.dry_run else ""
    lines = [f"failed (unreadable, see the log): {price_id}" for price_id in summary.failed]
    lines += [f"{would}marked deleted (Chargebee no longer lists it): {price_id}" for price_id in summary.gone]
    # Reported, not a failure: the page hides them (system check orgbilling.W030 says the same).
    lines += [f"offered in ORGBILLING_PLANS but {why}, hidden: {price_id}" for price_id, why in unavailable()]
    problem = f"{len(summary.failed)} item prices could not be applied" if summary.failed else ""
    return PassReport(str(summary), lines, problem)


def _grace_periods(options: SyncOptions) -> PassReport:
    ended = end_grace_periods(dry_run=options.dry_run)
    would = "would be " if options.dry_run else ""
    return PassReport(f"grace period ended for {len(ended)}", [f"{would}past grace: {row.pk}" for row in ended])


register(
    SyncPass(
        "invoices",
        "invoices from Chargebee's list (deleted ones too)",
        _mirror(sync_invoices, "invoices"),
        _unset("CHARGEBEE_API_KEY"),
    )
)
register(
    SyncPass(
        "payment-sources",
        "every customer's payment sources from Chargebee's list",
        _mirror(sync_payment_sources, "payment sources"),
        _unset("CHARGEBEE_API_KEY"),
    )
)
register(
    SyncPass(
        "prices",
        "plan item prices from Chargebee's list (the catalog the billing page offers; a full run also marks "
        "deleted those Chargebee no longer lists)",
        _prices,
        _unset("CHARGEBEE_API_KEY"),
    )
)
register(
    SyncPass(
        "grace-periods",
        "past-due subscriptions whose grace ran out: send grace_period_ended once (no vendor call)",
        _grace_periods,
        lambda: [],
    )
)


def _renewal_estimates(options: SyncOptions) -> PassReport:
    organization = options.organization
    summary = sync_estimates(
        organization_id=organization.pk if organization else None,
        dry_run=options.dry_run,
        progress=lambda done: options.progress("renewal estimates", done),
    )
    lines = [f"would fetch: {subscription_id}" for subscription_id in summary.wanted]
    lines += [f"failed (see the log; the old figure stays, shown as being updated): {sub}" for sub in summary.failed]
    # Not a failed pass: a figure that could not be fetched only stays marked stale (a subscription Chargebee no
    # longer has is the subscriptions pass's to report), and the next run tries again.
    return PassReport(str(summary), lines)


register(
    SyncPass(
        "renewal-estimates",
        "the next charge of each renewing subscription whose estimate is missing or older than its last change "
        "(Chargebee's renewal_estimate, one call each)",
        _renewal_estimates,
        _unset("CHARGEBEE_API_KEY"),
    )
)
