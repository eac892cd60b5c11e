from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from snowbuddy import json_input


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, but bounded in depth and strict about duplicate keys and NaN (snowbuddy.json_input)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read()
        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            try:
                raw = raw.decode(encoding).encode("utf-8")
            except (LookupError, UnicodeError):
                raise ParseError(f"Body is not valid {encoding}.", code="invalid_json") from None
        try:
            return json_input.loads(raw)
        except json_input.JsonInputError as exc:
            raise ParseError(exc.detail, code=exc.code) from None
