from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from orgbilling.chargebee_gateway import PAGE_SIZE, ChargebeeError
from orgbilling.models import Organization
from orgbilling.reconcile import sync_subscriptions


class Progress:
    """A one-line counter redrawn in place on a terminal; a plain line per list page otherwise (logs, CI).

    Chargebee's list calls give no total, so it counts rather than fills a bar.
    """

    def __init__(self, out: OutputWrapper):
        self.out, self.tty, self.done = out, out.isatty(), 0

    def __call__(self, done: int) -> None:
        self.done = done
        if self.tty:
            self.out.write(f"\rsyncing: {done} subscriptions", ending="")
            self.out.flush()
        elif done % PAGE_SIZE == 0:
            self.out.write(f"synced {done} subscriptions")

    def finish(self) -> None:
        if self.tty and self.done:
            self.out.write("")


class Command(BaseCommand):
    help = "Pull subscriptions from Chargebee (100 per list call) and apply them like webhooks; print a summary."

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="ID", help="only this organization's subscriptions")
        parser.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")

    def handle(self, *args, org: str | None, dry_run: bool, **options):
        organization = None
        if org is not None:
            organization = Organization.objects.filter(pk=org).first()
            if organization is None:
                raise CommandError(f"no organization with id {org}")
        progress = Progress(self.stderr)
        try:
            summary = sync_subscriptions(organization=organization, dry_run=dry_run, progress=progress)
        except ChargebeeError as exc:
            raise CommandError(f"sync stopped: {exc}") from exc
        finally:
            progress.finish()
        for subscription_id in summary.orphaned_in_chargebee:
            self.stdout.write(f"orphaned in Chargebee (no known organization): {subscription_id}")
        for subscription_id in summary.orphaned_locally:
            self.stdout.write(f"orphaned locally (gone from Chargebee): {subscription_id}")
        for subscription_id in summary.failed:
            self.stdout.write(f"failed (unreadable snapshot, see the log): {subscription_id}")
        self.stdout.write(str(summary))
        if summary.failed:
            raise CommandError(f"{len(summary.failed)} subscriptions could not be applied")
