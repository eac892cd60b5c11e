"""Typed readers for settings that come from the environment.

Every reader raises ImproperlyConfigured naming the variable, so a bad value stops the
process at start-up instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_secret(name: str, default: str = "") -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/K8s secrets)."""
    path = os.environ.get(f"{name}_FILE", "").strip()
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path!r} ({exc.strerror})") from exc
    return env_str(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}: must be <= {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a number, got {raw!r}") from None
    if value != value or (minimum is not None and value < minimum):  # NaN never passes
        raise ImproperlyConfigured(f"{name}: must be >= {minimum}, got {raw!r}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}: must be <= {maximum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def env_url(name: str, default: str = "") -> str:
    value = env_str(name, default)
    if value and not value.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"{name}: expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


_RATE_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_RATE_PERIODS.update({"d": 86400, "day": 86400})


def env_rate(name: str, default: str) -> str:
    """A throttle rate `<count>/<period>` (period s|sec|second|m|min|minute|h|hour|d|day), as DRF reads it.

    DRF parses rates only when a request is throttled, so a bad value would otherwise be a 500 on
    every throttled request instead of a failed start.
    """
    value = env_str(name, default) or default
    count, _, period = value.partition("/")
    if not (count.isascii() and count.isdigit() and int(count) > 0 and period in _RATE_PERIODS):
        raise ImproperlyConfigured(
            f"{name}: expected <count>/<period> with count >= 1 and period s, min, hour or day "
            f"(e.g. 15/min), got {value!r}"
        )
    return value


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """`X-Forwarded-Proto,https` (or Django's own `HTTP_X_FORWARDED_PROTO,https`) → the settings tuple."""
    raw = env_str(name)
    if not raw:
        return None
    header, _, value = (part.strip() for part in raw.partition(","))
    meta = header.upper().replace("-", "_")
    if not meta.startswith("HTTP_"):
        meta = f"HTTP_{meta}"
    if not value or not all(c.isalnum() or c == "_" for c in meta):
        raise ImproperlyConfigured(f"{name}: expected <header>,<value> such as X-Forwarded-Proto,https, got {raw!r}")
    return meta, value
