import re
from datetime import UTC, datetime, timedelta

from django.core.management import BaseCommand, CommandError
from django.utils import timezone

from matching.services import api_key_create

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
    help = "Create a SnowTrace API key and print it once (only its hash is stored)."

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

    def handle(self, *args, name: str, trusted_service: bool, expires: str | None, note: str, **options):
        expires_at = parse_expiry(expires, timezone.now()) if expires else None
        try:
            _, raw_key = api_key_create(name=name, is_trusted_service=trusted_service, expires_at=expires_at, note=note)
        except ValueError as exc:  # an expiry in the past, or a third live key for the client
            raise CommandError(str(exc)) from None
        self.stdout.write(raw_key)
