import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command
from django.db import transaction

from matching.demo import demo_profiles
from matching.models import SkierProfile
from matching.selectors import forget_resort_regions, resort_regions
from matching.services import api_key_create, profile_fields


class Command(BaseCommand):
    help = "Load the resorts and deterministic demo profiles, create an admin and a demo API key."

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, default=3000, help="how many synthetic profiles (default 3000)")
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument("--admin-username", default="admin")
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="where the console listens, for the printed curl line"
        )

    def handle(self, *args, profiles: int, seed: int, admin_username: str, base_url: str, **options):
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
        self.stdout.write(f"Loaded {len(regions)} resorts and {profiles} demo profiles (seed {seed}).")

        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User = get_user_model()
        admin, _ = User.objects.get_or_create(username=admin_username, defaults={"email": "admin@example.invalid"})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        _, raw_key = api_key_create(name="demo", is_trusted_service=True)

        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  admin login:  {admin_username} / {password}")
        self.stdout.write(f"  demo API key: {raw_key}")
        self.stdout.write(
            f"  try: curl -s -X POST {base_url.rstrip('/')}/matching/searches "
            f"-H 'X-API-Key: {raw_key}' -H 'X-User-Id: demo-user' -H 'Content-Type: application/json' "
            """-d '{"role":"buddy","skill_level_min":3,"skill_level_max":7,"resorts":["yuzawa_naeba"]}'"""
        )
