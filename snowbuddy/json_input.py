"""Strict JSON for request bodies: bounded nesting, no duplicate keys, no NaN or Infinity, and
text the console can store.

Python's parser recurses once per nesting level, so a body of 60 KB of `[` ends in a
RecursionError (a 500) rather than a ValueError; and it keeps the last of two equal keys
silently. A string may escape `\u0000` or half a surrogate pair, which PostgreSQL cannot store
(NUL in text, or not UTF-8 at all): a 500 at the first write (I-JSON, RFC 7493, forbids the
latter too). Every body the console parses (the REST API, the webhooks) goes through `loads`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32

# The bytes that matter for nesting: quotes and backslashes (strings) and brackets.
_TOKENS = re.compile(rb'["\\\[\]{}]')


class JsonInputError(ValueError):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


def too_deep(raw: bytes, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than `max_depth`, found in one linear pass.

    Brackets inside strings do not count. Where the input is not valid JSON the count may differ
    from a parser's view, but only after the first error, where the parser stops anyway.
    """
    depth, in_string, skip = 0, False, -1
    for match in _TOKENS.finditer(raw):
        at = match.start()
        if at == skip:
            continue
        char = raw[at]
        if in_string:
            if char == 0x5C:  # backslash: the next byte is escaped
                skip = at + 1
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                return True
        elif char in (0x5D, 0x7D):
            depth -= 1
    return False


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise JsonInputError("duplicate_key", f"JSON object has the key {key[:64]!r} twice.")
        result[key] = value
    return result


def _no_constants(name: str):
    raise JsonInputError("invalid_json", f"{name} is not valid JSON.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise JsonInputError("invalid_json", f"The number {text[:32]} is out of range.")
    return value


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate
        return False
    return True


def _check_text(value: Any) -> None:
    """Every string (keys too) is text the console can store: no NUL, no unpaired surrogate."""
    if isinstance(value, str):
        bad = not _storable(value)
    elif isinstance(value, dict):
        bad = not all(_storable(key) for key in value)
        for item in value.values():
            _check_text(item)
    elif isinstance(value, list):
        bad = False
        for item in value:
            _check_text(item)
    else:
        bad = False
    if bad:
        raise JsonInputError(
            "unsupported_character", "A string holds U+0000 (NUL) or an unpaired surrogate, which cannot be stored."
        )


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a request body or raise JsonInputError (code `invalid_json`, `too_deep`, `duplicate_key`,
    `unsupported_character`)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if too_deep(data, max_depth):
        raise JsonInputError("too_deep", f"JSON nested deeper than {max_depth} levels.")
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants, parse_float=_finite_float
        )
        _check_text(value)  # nesting is bounded above, so this recursion is too
        return value
    except JsonInputError:
        raise
    except RecursionError:  # a belt to the depth braces: never a 500
        raise JsonInputError("too_deep", f"JSON nested deeper than {max_depth} levels.") from None
    except UnicodeDecodeError:
        raise JsonInputError("invalid_json", "Body is not UTF-8.") from None
    except ValueError as exc:  # JSONDecodeError, and ints over Python's digit limit
        raise JsonInputError("invalid_json", f"Malformed JSON: {exc}") from None
