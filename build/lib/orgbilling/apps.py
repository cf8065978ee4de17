from django.apps import AppConfig


class OrgBillingConfig(AppConfig):
    name = "orgbilling"
    verbose_name = "Organization billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  registers the system checks
