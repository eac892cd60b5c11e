from django.core.management import BaseCommand, CommandError

from matching.candidates.sync import profiles_sync
from matching.snowtrace.http import ServiceConfigError


class Command(BaseCommand):
    help = (
        "Pull users, knowledge scores and resorts from SnowTrace's services into the console's profiles. "
        "Resumes an unfinished run after its last written page; see docs/profiles.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="a full pass even if the user service is incremental")
        parser.add_argument("--restart", action="store_true", help="drop an unfinished run's resume point, start over")
        parser.add_argument("--max-seconds", type=float, help="pause (resumably) at a page boundary after this long")
        parser.add_argument("--quiet", action="store_true", help="only the summary and the rejected records")

    def handle(self, *args, full: bool, restart: bool, max_seconds: float | None, quiet: bool, **options):
        progress = None if quiet else (lambda line: self.stdout.write(line))
        try:
            report = profiles_sync(full=full, restart=restart, time_budget=max_seconds, progress=progress)
        except ServiceConfigError as exc:
            raise CommandError(str(exc)) from None
        for rejection in report.rejections:
            self.stdout.write(
                self.style.WARNING(
                    f"rejected user {rejection['user_id'] or '(no user id)'} "
                    f"(page {rejection['page']}, item {rejection['item']}): {rejection['reason']}"
                )
            )
        for warning in report.warnings:
            self.stdout.write(self.style.WARNING(warning))
        summary = report.line()
        if report.error:
            raise CommandError(f"{summary}: {report.error}")
        self.stdout.write(self.style.SUCCESS(summary) if report.complete else summary)
