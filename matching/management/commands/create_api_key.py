from django.core.management import BaseCommand

from matching.services import api_key_create


class Command(BaseCommand):
    help = "Create a SnowTrace API key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who the key is for, e.g. snowtrace-prod")
        parser.add_argument(
            "--trusted-service",
            action="store_true",
            help="a SnowTrace service: may act for any user (X-User-Id) and push profiles",
        )

    def handle(self, *args, name: str, trusted_service: bool, **options):
        _, raw_key = api_key_create(name=name, is_trusted_service=trusted_service)
        self.stdout.write(raw_key)
