"""Search ids as the API, the feed and the webhook take them: a UUID in its usual written form."""

from __future__ import annotations

import re
import uuid

# 8-4-4-4-12 hex digits, either case (what JSON Schema's `format: uuid` accepts). uuid.UUID() alone
# also takes "{...}", "urn:uuid:..." and 32 digits without hyphens, which the schema does not allow.
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str) or not UUID_RE.fullmatch(value):
        return None
    return uuid.UUID(value)
