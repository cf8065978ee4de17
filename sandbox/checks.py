"""System checks: the sandbox hands out sign-ins and fake payments to anyone, so never in production."""

from __future__ import annotations

from django.conf import settings
from django.core import checks


@checks.register()
def check_debug(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """sandbox.E001: SANDBOX_ENABLED with DEBUG off."""
    if getattr(settings, "SANDBOX_ENABLED", False) and not settings.DEBUG:
        return [
            checks.Error(
                "The sandbox vendors are enabled while DEBUG is off: anyone could sign in as any user.",
                hint="Set SANDBOX=false and configure real Scalekit and Chargebee credentials "
                "(the sandbox turns itself on when SCALEKIT_CLIENT_ID and CHARGEBEE_API_KEY are both empty).",
                id="sandbox.E001",
            )
        ]
    return []
