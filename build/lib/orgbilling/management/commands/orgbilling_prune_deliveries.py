from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orgbilling.models import WebhookDelivery

# Chargebee asks receivers to remember event ids for 3 days 7 hours to deduplicate retries.
DEDUPE_WINDOW = timedelta(days=3, hours=7)


class Command(BaseCommand):
    help = (
        "Delete processed and ignored webhook deliveries older than --older-than days (raw bodies hold customer data)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, default=30, metavar="DAYS", help="age in days (default 30)")

    def handle(self, *args, older_than: float, **options):
        age = timedelta(days=older_than)
        if age < DEDUPE_WINDOW:
            raise CommandError("--older-than must cover Chargebee's dedupe window of 3 days 7 hours (about 3.3 days)")
        done = (WebhookDelivery.Status.PROCESSED, WebhookDelivery.Status.IGNORED)
        deleted, _ = WebhookDelivery.objects.filter(status__in=done, received_at__lt=timezone.now() - age).delete()
        self.stdout.write(f"deleted {deleted} deliveries older than {older_than:g} days")
