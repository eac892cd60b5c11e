from django.core.management import BaseCommand

from matching.services import api_key_create


class Command(BaseCommand):
    help = "Create a SnowTrace API key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who the key is for, e.g. snowtrace-prod")

    def handle(self, *args, name: str, **options):
        _, raw_key = api_key_create(name=name)
        self.stdout.write(raw_key)
