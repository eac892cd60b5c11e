from django.apps import AppConfig


class MatchingConfig(AppConfig):
    name = "matching"
    verbose_name = "Matching"

    def ready(self) -> None:
        # Registers the OpenAPI description of the API-key scheme.
        from matching.api import authentication  # noqa: F401
