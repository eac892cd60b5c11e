import os
import re
from datetime import UTC, datetime, timedelta

from django.core.management import BaseCommand, CommandError
from django.utils import timezone

from matching.services.keys import ApiKeyImportRefused, api_key_create, api_key_import

DURATION_RE = re.compile(r"^(\d{1,5})([hdw])$")
DURATION_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(value: str, now: datetime) -> datetime:
    """`--expires`: a duration from now (12h, 90d, 13w), a date (2027-03-01: the key stops working
    at 00:00 UTC that day) or an ISO date and time (2027-03-01T12:00Z; without an offset, UTC)."""
    value = value.strip()
    if match := DURATION_RE.match(value):
        return now + timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--expires {value!r}: expected a duration (12h, 90d, 13w), a date (2027-03-01) "
            "or a date and time (2027-03-01T12:00Z)"
        ) from None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Create a SnowTrace API key and print it once (only its hash is stored), or, with --from-env, "
        "store the hash of a key SnowTrace already holds."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="who the key is for, e.g. snowtrace-prod")
        parser.add_argument(
            "--trusted-service",
            action="store_true",
            help="a SnowTrace service: may act for any user (X-User-Id) and push profiles",
        )
        parser.add_argument(
            "--expires",
            metavar="WHEN",
            help="when the key stops working: a duration (12h, 90d, 13w), a date (2027-03-01, at 00:00 UTC) "
            "or an ISO date and time; default: never",
        )
        parser.add_argument("--note", default="", help="who holds the key and where it is kept (shown in the admin)")
        parser.add_argument(
            "--from-env",
            metavar="VARIABLE",
            help="import the key held in this environment variable (e.g. SNOWBUDDY_API_KEY) instead of "
            "making one; it is read from the environment so it never appears in the command line",
        )

    def handle(
        self, *args, name: str, trusted_service: bool, expires: str | None, note: str, from_env: str | None, **options
    ):
        expires_at = parse_expiry(expires, timezone.now()) if expires else None
        if from_env is not None:
            self._import(name, from_env, trusted_service=trusted_service, expires_at=expires_at, note=note)
            return
        try:
            _, raw_key = api_key_create(name=name, is_trusted_service=trusted_service, expires_at=expires_at, note=note)
        except ValueError as exc:  # an expiry in the past, or a third live key for the client
            raise CommandError(str(exc)) from None
        self.stdout.write(raw_key)

    def _import(self, name: str, variable: str, *, trusted_service: bool, expires_at, note: str) -> None:
        raw_key = os.environ.get(variable, "")
        if not raw_key.strip():
            raise CommandError(f"{variable} is not set (or empty) in this environment.")
        try:
            key = api_key_import(
                name=name, raw_key=raw_key, is_trusted_service=trusted_service, expires_at=expires_at, note=note
            )
        except (ApiKeyImportRefused, ValueError) as exc:
            raise CommandError(str(exc)) from None
        trusted = " (trusted service)" if key.is_trusted_service else ""
        self.stdout.write(f"imported {variable} as {key.name}{trusted}, label {key.prefix}; the key is unchanged")
