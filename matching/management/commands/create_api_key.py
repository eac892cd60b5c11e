import os

from django.core.management import BaseCommand, CommandError

from matching.services import ApiKeyImportRefused, api_key_create, api_key_import


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
            "--from-env",
            metavar="VARIABLE",
            help="import the key held in this environment variable (e.g. SNOWBUDDY_API_KEY) instead of "
            "making one; it is read from the environment so it never appears in the command line",
        )

    def handle(self, *args, name: str, trusted_service: bool, from_env: str | None, **options):
        if from_env is None:
            _, raw_key = api_key_create(name=name, is_trusted_service=trusted_service)
            self.stdout.write(raw_key)
            return
        raw_key = os.environ.get(from_env, "")
        if not raw_key.strip():
            raise CommandError(f"{from_env} is not set (or empty) in this environment.")
        try:
            key = api_key_import(name=name, raw_key=raw_key, is_trusted_service=trusted_service)
        except ApiKeyImportRefused as exc:
            raise CommandError(str(exc)) from None
        trusted = " (trusted service)" if key.is_trusted_service else ""
        self.stdout.write(f"imported {from_env} as {key.name}{trusted}, label {key.prefix}; the key is unchanged")
