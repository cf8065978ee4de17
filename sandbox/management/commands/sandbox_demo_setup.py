"""Seed the sandbox's demo organizations and users, provision them in the app, and make an admin login.

Organizations reach the app the way they would from Scalekit: as signed
webhooks to APP_URL, whose handling calls the (fake) Chargebee at APP_URL
too. So the app must be served at APP_URL while this runs: if nothing
listens there yet (bin/demo runs this before the server), the command
serves the project itself on that port until every delivery is answered.
Safe to run again: see sandbox.demo.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.core.wsgi import get_wsgi_application

from sandbox import demo, runtime
from sandbox.fake_chargebee import serve
from sandbox.settings_overlay import CREDENTIALS_FILE

ADMIN_USERNAME = "admin"
DELIVERY_TIMEOUT = 60  # seconds to wait for the webhooks (and the retries of failed ones)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class Command(BaseCommand):
    help = "Create the sandbox demo organizations, users and a Django admin superuser (idempotent)."

    def handle(self, *args, **options) -> None:
        if not getattr(settings, "SANDBOX_ENABLED", False):
            self.stdout.write("The sandbox is off (vendor credentials are configured): no demo data to create.")
            return
        app = urlsplit(settings.APP_URL)
        host, port = app.hostname or "localhost", app.port or (443 if app.scheme == "https" else 80)
        server = None
        if not _listening(host, port):
            # serve() binds an address, not a name: localhost means the loopback address.
            server = serve(get_wsgi_application(), "127.0.0.1" if host == "localhost" else host, port)
        try:
            users = demo.seed()
            delivered = runtime.sender().wait_idle(DELIVERY_TIMEOUT)
            # The price catalog, as an operator's first sync would mirror it (webhooks keep it current after).
            call_command("orgbilling_sync", "--prices", stdout=self.stdout, stderr=self.stderr)
        finally:
            if server:
                server.stop()
        self._report_deliveries(delivered)
        password = self._ensure_superuser()
        self.stdout.write("Demo users (sign in from the billing page; no password):")
        for user in users:
            roles = ", ".join(f"{role} of {demo.DEMO_ORGANIZATIONS[org]}" for org, role in user.memberships.items())
            self.stdout.write(f"  {user.given_name} {user.family_name} <{user.email}>: {roles}")
        self.stdout.write(f"Django admin: {settings.APP_URL}/admin/  user {ADMIN_USERNAME}  password {password}")
        self.stdout.write(f"Sandbox controls: {settings.APP_URL}/sandbox/")
        self.stdout.write(self.style.SUCCESS(f"Open {settings.SANDBOX_BILLING_URL}"))

    def _report_deliveries(self, finished: bool) -> None:
        attempts = runtime.sender().attempts()
        answered = {attempt.event_id for attempt in attempts if attempt.ok}
        failed = [attempt for attempt in attempts if not attempt.ok and attempt.event_id not in answered]
        if not finished or failed:
            for attempt in failed:
                self.stderr.write(f"  {attempt.event_type} {attempt.event_id}: {attempt.status} {attempt.error}")
            self.stderr.write(
                self.style.WARNING(
                    f"Some webhooks were not accepted by {settings.APP_URL}. Is this project the server there?"
                )
            )

    def _ensure_superuser(self) -> str:
        """The superuser `admin` with the sandbox's generated password (reset to it on every run)."""
        credentials = json.loads((runtime.sandbox_dir() / CREDENTIALS_FILE).read_text())
        password = credentials["django_admin_password"]
        user, _ = get_user_model().objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"email": "admin@example.com"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        if not user.check_password(password):
            user.set_password(password)
        user.save()
        return password
