from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandbox"
    verbose_name = "Sandbox vendors"

    def ready(self) -> None:
        from . import checks  # noqa: F401  registers the system checks
