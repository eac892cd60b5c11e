from django.core.exceptions import ValidationError
from django.core.management import BaseCommand, CommandError

from matching.models import Engine, Search
from workflows.durable_console.history import DurableExecutionsError, DurableExecutionsReader
from workflows.durable_console.reconcile import search_reconcile, searches_reconcile_drift
from workflows.mirror.history import execution_history_sync
from workflows.models import WorkflowExecution


class Command(BaseCommand):
    help = (
        "Compare unfinished searches with DynamoDB and their durable executions (or check Celery searches for "
        "being stuck); repair what is certain and flag the rest. --search ID checks one search now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--search", dest="search_id", help="check this one search (any age)")
        parser.add_argument("--limit", type=int, default=None, help="searches to check (default: settings)")

    def handle(self, *args, search_id: str | None, limit: int | None, **options):
        if search_id:
            try:
                search = Search.objects.get(pk=search_id)
            except (Search.DoesNotExist, ValidationError) as exc:
                raise CommandError(f"no search {search_id}") from exc
            result = search_reconcile(search=search)
            self.stdout.write(f"{result.search_id}: {result.outcome}: {result.reason}")
            self._copy_history(search)
            return
        report = searches_reconcile_drift(limit=limit)
        for result in report.results:
            if result.outcome != "ok":
                self.stdout.write(f"  {result.search_id}: {result.outcome}: {result.reason}")
        self.stdout.write(self.style.SUCCESS(report.line()))

    def _copy_history(self, search: Search) -> None:
        if search.engine != Engine.DURABLE:
            return
        execution = WorkflowExecution.objects.filter(search=search, attempt=search.attempt).exclude(execution_arn="")
        execution = execution.first()
        if execution is None:
            return
        try:
            added, ended = execution_history_sync(execution=execution, reader=DurableExecutionsReader.from_settings())
        except DurableExecutionsError as exc:
            self.stdout.write(f"history not read: {exc}")
            return
        self.stdout.write(f"history: {added} new events{' (execution ended)' if ended else ''}")
