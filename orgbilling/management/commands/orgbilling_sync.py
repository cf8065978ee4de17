import argparse
import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.utils import timezone

from orgbilling import conf, jobs
from orgbilling.chargebee_gateway import PAGE_SIZE
from orgbilling.models import Organization
from orgbilling.sync_passes import PASSES, SyncOptions, SyncPass

LOCK_NAME = "orgbilling_sync"
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def duration(value: str) -> timedelta:
    """``15m``, ``2h`` or ``1d``."""
    match = re.fullmatch(r"([1-9]\d{0,4})([mhd])", value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration such as 15m, 2h or 1d")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Progress:
    """A one-line counter redrawn in place on a terminal; a plain line per list page otherwise (logs, CI).

    The vendors' list calls give no total, so it counts rather than fills a bar.
    """

    def __init__(self, out: OutputWrapper, lease: jobs.Lease | None):
        self.out, self.tty, self.lease, self.done = out, out.isatty(), lease, 0

    def __call__(self, unit: str, done: int) -> None:
        self.done = done
        if self.lease is not None:
            self.lease.renew()
        if self.tty:
            self.out.write(f"\rsyncing: {done} {unit}", ending="")
            self.out.flush()
        elif done % PAGE_SIZE == 0:
            self.out.write(f"synced {done} {unit}")

    def finish(self) -> None:
        if self.tty and self.done:
            self.out.write("")
        self.done = 0


class Command(BaseCommand):
    help = (
        "Bring the local mirrors in line with the vendors (every pass unless flags choose some) and print what"
        " each pass found. One run at a time: a run that finds another in progress exits without starting."
    )

    def add_arguments(self, parser):
        for sync_pass in PASSES.values():
            parser.add_argument(
                f"--{sync_pass.name}",
                dest=_dest(sync_pass),
                action="store_true",
                help=f"run this pass: {sync_pass.help}",
            )
        parser.add_argument("--org", metavar="ID", help="only this organization")
        parser.add_argument(
            "--since",
            type=duration,
            metavar="DURATION",
            help="a cheap catch-up: only what changed in the last 15m, 2h, 1d...; reports nothing gone",
        )
        parser.add_argument(
            "--delete-missing",
            action="store_true",
            help="delete organizations Scalekit no longer has (after a complete listing and a 404), like"
            " organization.deleted",
        )
        parser.add_argument("--dry-run", action="store_true", help="show what would change; write and send nothing")

    def handle(self, *args, org, since, delete_missing, dry_run, **options):
        if since is not None and delete_missing:
            raise CommandError("--delete-missing needs a full run: only a full listing shows what is gone")
        chosen = [sync_pass for sync_pass in PASSES.values() if options[_dest(sync_pass)]]
        explicit, chosen = bool(chosen), chosen or list(PASSES.values())
        organization = None
        if org is not None:
            organization = Organization.objects.filter(pk=org).first()
            if organization is None:
                raise CommandError(f"no organization with id {org}")
        run = {"org": organization, "since": since, "dry_run": dry_run, "delete_missing": delete_missing}
        if dry_run:  # reads only: it may overlap a real run, and leaves no trace
            problems = self.run_passes(chosen, explicit, None, **run)
        else:
            try:
                lease = jobs.acquire(LOCK_NAME, conf.get("ORGBILLING_SYNC_LEASE_SECONDS"))
            except jobs.Busy as busy:
                raise CommandError(str(busy)) from None
            try:
                problems = self.run_passes(chosen, explicit, lease, **run)
            finally:
                jobs.release(lease)
        if problems:
            raise CommandError("; ".join(problems))

    def run_passes(self, chosen: list[SyncPass], explicit: bool, lease, *, org, since, **flags) -> list[str]:
        """Run each pass (one failing does not stop the others); return what failed, one line each."""
        progress = Progress(self.stderr, lease)
        started = timezone.now()
        options = SyncOptions(since=started - since if since else None, organization=org, progress=progress, **flags)
        # Only whole runs count for orgbilling_health: not dry runs, not one organization.
        recorded = not options.dry_run and org is None
        problems = []
        for sync_pass in chosen:
            if missing := sync_pass.missing_settings():
                if explicit:
                    problems.append(f"{sync_pass.name}: not configured (set {', '.join(missing)})")
                else:
                    self.stdout.write(f"{sync_pass.name}: skipped (not configured: {', '.join(missing)})")
                continue
            if recorded:
                jobs.record_start(f"sync:{sync_pass.name}")
            try:
                report = sync_pass.run(options)
            finally:
                progress.finish()
            for line in report.lines:
                self.stdout.write(line)
            self.stdout.write(f"{sync_pass.name}: {report.summary}")
            if report.problem:
                problems.append(f"{sync_pass.name}: {report.problem}")
            if recorded:
                ok = not report.problem
                jobs.record_outcome(
                    f"sync:{sync_pass.name}",
                    ok=ok,
                    summary=report.summary if ok else report.problem,
                    full=since is None,
                )
        return problems


def _dest(sync_pass: SyncPass) -> str:
    return "pass_" + sync_pass.name.replace("-", "_")
