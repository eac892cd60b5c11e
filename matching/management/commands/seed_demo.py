import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import BaseCommand, call_command
from django.db import transaction

from matching.candidates.warm_index import profile_index_invalidate
from matching.management.demo_profiles import demo_profiles
from matching.management.demo_searches import demo_searches_create
from matching.models import ApiClientKey, SkierProfile
from matching.selectors import forget_resort_regions, resort_regions
from matching.services.keys import api_key_create, api_key_revoke, hash_api_key
from matching.services.profiles import profile_fields

DEMO_STAFF = [("operator", "Match operators"), ("reviewer", "Match reviewers")]


def _secrets_file() -> Path:
    return Path(settings.VAR_DIR) / "demo_logins.json"


def _load_secrets() -> dict:
    path = _secrets_file()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_secrets(values: dict) -> None:
    path = _secrets_file()
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)  # the demo's passwords and API key: readable by their owner only
    path.write_text(json.dumps(values, indent=2))


class Command(BaseCommand):
    help = (
        "Load the resorts and deterministic demo profiles, demo searches in every state, an admin and demo staff "
        "(passwords kept across runs in var/demo_logins.json), and one demo API key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, default=3000, help="how many synthetic profiles (default 3000)")
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument("--admin-username", default="admin")
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="where the console listens, for the printed curl line"
        )
        parser.add_argument("--reset-password", action="store_true", help="give the demo logins new passwords")
        parser.add_argument("--no-searches", action="store_true", help="skip the demo searches")

    def handle(
        self, *args, profiles: int, seed: int, admin_username: str, base_url: str, reset_password: bool, **options
    ):
        call_command("loaddata", "resorts", verbosity=0)
        forget_resort_regions()
        regions = resort_regions()

        batch: list[SkierProfile] = []
        with transaction.atomic():
            SkierProfile.objects.filter(user_id__startswith="u").delete()
            for fields in demo_profiles(profiles, regions, seed=seed):
                batch.append(SkierProfile(**profile_fields(**fields)))
                if len(batch) >= 1000:
                    SkierProfile.objects.bulk_create(batch)
                    batch.clear()
            SkierProfile.objects.bulk_create(batch)
            # The delete above leaves no tombstones: make every warm candidate index reload.
            transaction.on_commit(profile_index_invalidate)
        self.stdout.write(f"Loaded {len(regions)} resorts and {profiles} demo profiles (seed {seed}).")

        kept = {} if reset_password else _load_secrets()
        stored = _load_secrets()
        logins, to_keep = {}, {}
        User = get_user_model()
        for username, group in [(admin_username, None), *DEMO_STAFF]:
            password = kept.get("passwords", {}).get(username) or secrets.token_urlsafe(12)
            to_keep[username] = password
            if username == admin_username and os.environ.get("DEMO_ADMIN_PASSWORD"):
                # The environment wins, and is never written to disk.
                password = os.environ["DEMO_ADMIN_PASSWORD"]
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.invalid"})
            user.is_staff = True
            user.is_superuser = group is None
            user.set_password(password)
            user.save()
            if group:
                user.groups.set([Group.objects.get(name=group)])
            logins[username] = password

        raw_key = stored.get("api_key", "")
        key = ApiClientKey.objects.filter(name="demo", key_hash=hash_api_key(raw_key), revoked_at__isnull=True).first()
        if key is None:
            # A new machine (or a lost file): one fresh key; older demo keys stop working.
            for old in ApiClientKey.objects.filter(name="demo", revoked_at__isnull=True):
                api_key_revoke(key=old)
            _, raw_key = api_key_create(name="demo", is_trusted_service=True)
        _save_secrets({"passwords": {**stored.get("passwords", {}), **to_keep}, "api_key": raw_key})

        if not options["no_searches"]:
            lines = demo_searches_create(seed=seed)
            self.stdout.write("Demo searches (seekers demo-seeker-*), one per state, plus finished ones for the chart:")
            for line in lines:
                self.stdout.write(f"  {line}")

        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  admin login:  {admin_username} / {logins[admin_username]}")
        for username, group in DEMO_STAFF:
            self.stdout.write(f"  {group[6:-1].lower()} login: {username} / {logins[username]}  ({group})")
        self.stdout.write(f"  (kept in {_secrets_file()}; `seed_demo --reset-password` gives new ones)")
        if settings.STAFF_REQUIRE_MFA:
            self.stdout.write(
                "  second factor: ON (STAFF_REQUIRE_MFA=true): the admin and the operator enrol an authenticator "
                "app at their first sign-in"
            )
        else:
            self.stdout.write(
                "  second factor: OFF for these demo logins (STAFF_REQUIRE_MFA=false; production keeps it on)"
            )
        self.stdout.write(f"  demo API key: {raw_key}")
        self.stdout.write(
            f"  try: curl -s -X POST {base_url.rstrip('/')}/matching/searches "
            f"-H 'X-API-Key: {raw_key}' -H 'X-User-Id: demo-user' -H 'Content-Type: application/json' "
            """-d '{"role":"buddy","skill_level_min":3,"skill_level_max":7,"resorts":["yuzawa_naeba"]}'"""
        )
