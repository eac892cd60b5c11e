from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.settings import api_settings


class _NoFormatOverride:
    URL_FORMAT_OVERRIDE = None

    def __getattr__(self, name):
        return getattr(api_settings, name)


class JsonNegotiation(DefaultContentNegotiation):
    """The API renders JSON only, chosen by `Accept` (with its `version`). A `?format=` query
    parameter chooses nothing: DRF would answer an unknown one with a 404 on every endpoint. (The
    schema views keep DRF's negotiation: `/api/schema/?format=json`.)"""

    settings = _NoFormatOverride()
