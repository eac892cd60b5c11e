from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MatchingConfig(AppConfig):
    name = "matching"
    verbose_name = _("Matching")

    def ready(self) -> None:
        # Registers the OpenAPI description of the API-key scheme.
        from matching.api import authentication  # noqa: F401
