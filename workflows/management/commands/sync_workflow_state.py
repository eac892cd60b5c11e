import time

from django.core.management import BaseCommand, CommandError

from workflows.durable_console.dynamo import DynamoStateError
from workflows.mirror.history import workflow_history_sync
from workflows.mirror.state import SyncReport, parse_since, workflow_state_sync


class Command(BaseCommand):
    help = (
        "Pull the durable engine's state from DynamoDB into the console's mirror: items changed since the "
        "stored watermark (or --since), or the whole table (--full); then new console events and, unless "
        "--no-history, the history of executions that changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="scan the whole table instead of the sync index")
        parser.add_argument(
            "--since", help="read the sync index from this ISO time or duration back (15m, 2h, 1d), not the watermark"
        )
        parser.add_argument("--no-history", action="store_true", help="skip GetDurableExecutionHistory")
        parser.add_argument(
            "--history-limit", type=int, default=None, help="executions whose history is read (default: settings)"
        )
        parser.add_argument(
            "--progress-every", type=float, default=2.0, help="seconds between progress lines (0: every page)"
        )

    def handle(self, *args, full: bool, since: str | None, no_history: bool, **options):
        if full and since:
            raise CommandError("--full and --since exclude each other")
        try:
            since_iso = parse_since(since) if since else None
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        every = options["progress_every"]
        last = [0.0]

        def progress(report: SyncReport) -> None:
            now = time.monotonic()
            if now - last[0] >= every:
                last[0] = now
                rate = report.fetched / report.elapsed if report.elapsed else 0.0
                self.stdout.write(
                    f"  page {report.pages}: {report.fetched:,} items ({rate:,.0f}/s), {report.applied:,} applied, "
                    f"{report.stale:,} not newer, {report.status_changes:,} status changes, "
                    f"watermark {report.watermark or '-'}"
                )

        try:
            report = workflow_state_sync(full=full, since=since_iso, progress=progress)
        except DynamoStateError as exc:
            raise CommandError(f"sync stopped: {exc} (pages already applied are kept)") from exc
        self.stdout.write(self.style.SUCCESS(report.line()))
        if not no_history:
            history = workflow_history_sync(limit=options["history_limit"])
            self.stdout.write(
                f"history: {history.executions} executions read, {history.events_added} events added, "
                f"{history.completed} complete, {history.not_found} not found"
                + (f"; errors: {'; '.join(history.errors)}" if history.errors else "")
            )
