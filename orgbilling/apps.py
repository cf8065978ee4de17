from django.apps import AppConfig, apps


class OrgBillingConfig(AppConfig):
    name = "orgbilling"
    verbose_name = "Organization billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import catalog_checks, checks, throttle  # noqa: F401  register the system checks

        if apps.is_installed("django_tasks_db"):  # queue mode's workers
            from .tasks import connect_to_workers

            connect_to_workers()
