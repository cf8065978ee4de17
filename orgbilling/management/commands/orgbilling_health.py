import json

from django.core.management.base import BaseCommand, CommandError

from orgbilling import health


class Command(BaseCommand):
    help = (
        "Check that orgbilling's promises hold (deliveries, webhooks arriving, syncs running, Chargebee's webhook"
        " endpoint): exit 0 when healthy, 1 with one line per problem otherwise. For cron or a probe."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the whole report as one JSON object"
        )

    def handle(self, *args, as_json: bool, **options):
        report = health.check(ask_chargebee=True)
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), sort_keys=True))
        elif report.healthy:
            self.stdout.write("healthy")
        else:
            for problem in report.problems:
                self.stdout.write(f"{problem.code}: {problem.message}")
        if not report.healthy:
            raise CommandError(f"unhealthy: {len(report.problems)} problem(s)", returncode=1)
