from django.core.management.base import BaseCommand, CommandError

from orgbilling.models import WebhookDelivery
from orgbilling.replay import replay


class Command(BaseCommand):
    help = "Process recorded webhook deliveries again (the failed ones, or those given by event id)."

    def add_arguments(self, parser):
        parser.add_argument("--failed", action="store_true", help="replay every failed delivery")
        parser.add_argument(
            "--id",
            dest="event_ids",
            action="append",
            default=[],
            metavar="EVENT_ID",
            help="replay the delivery with this vendor event id (repeatable)",
        )

    def handle(self, *args, failed: bool, event_ids: list[str], **options):
        if not failed and not event_ids:
            raise CommandError("say which deliveries to replay: --failed and/or --id EVENT_ID")
        selected = WebhookDelivery.objects.none()
        if failed:
            selected |= WebhookDelivery.objects.filter(status=WebhookDelivery.Status.FAILED)
        if event_ids:
            found = WebhookDelivery.objects.filter(event_id__in=event_ids)
            missing = sorted(set(event_ids) - set(found.values_list("event_id", flat=True)))
            if missing:
                raise CommandError(f"no delivery recorded with event id: {', '.join(missing)}")
            selected |= found
        results = replay(selected.distinct())
        for delivery, outcome in results:
            note = " (already done, unchanged)" if outcome.already_done else ""
            error = f": {outcome.error}" if outcome.error else ""
            self.stdout.write(
                f"{delivery.vendor} {delivery.event_type} {delivery.event_id}: {outcome.status}{note}{error}"
            )
        still_failed = sum(1 for _, outcome in results if outcome.failed)
        self.stdout.write(f"replayed {len(results)}, still failed {still_failed}")
        if still_failed:
            raise CommandError(f"{still_failed} deliveries still fail; see their last error in the admin")
