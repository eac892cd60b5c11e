"""The seed_scale command: arguments, checks, the transaction and the report (rows.py makes the rows).

Run by `python -m devtools.seed_scale` (__main__.py); tests run it with `call_command(Command(), …)`.
"""

import time
from dataclasses import replace
from datetime import UTC, datetime

from django.core.management import BaseCommand, CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from devtools.seed_scale.rows import ScaleConfig, ScaleSeed, TableReport, table
from matching.models import (
    ApiClientKey,
    Resort,
    Search,
    SearchEvent,
    SearchNotification,
    SearchResult,
    StaffAction,
)
from matching.services.keys import api_key_create
from workflows.models import ExecutionTimelineEntry, SearchDispatch, WebhookDelivery, WorkflowExecution

SEEDED = (
    Search, SearchEvent, SearchResult, SearchDispatch, WorkflowExecution, WebhookDelivery, SearchNotification,
    StaffAction, ExecutionTimelineEntry,
)  # fmt: skip
# The key the seeded searches came in with (a SnowTrace service key, as in production).
SEED_KEY_NAME = "snowtrace (seed_scale)"


class Command(BaseCommand):
    help = (
        "Fill PostgreSQL with a production-sized history (default 1,000,000 searches over 90 days, ~4 events "
        "and ~1 result each, dispatches, executions, webhook deliveries, notifications, the staff audit trail, "
        "sample timelines) for the admin "
        "benchmark. Generated inside the server; refuses SQLite and a database that already has searches."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.prog = "python -m devtools.seed_scale"
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--searches", type=int, default=1_000_000, help="how many (default 1,000,000)")
        parser.add_argument("--seed", type=int, default=2026, help="same seed and --until, same rows")
        parser.add_argument("--days", type=int, default=90, help="spread creation over this many days")
        parser.add_argument("--until", help="ISO time of the end of the period (default: now)")
        parser.add_argument("--active", type=int, help="unfinished searches (default 0.3 %% of --searches)")
        parser.add_argument("--results-per-search", type=float, default=1.0, help="mean over all searches")
        parser.add_argument(
            "--timeline-sample",
            type=float,
            default=0.01,
            help="share of executions with a copied timeline (active and flagged ones always have one)",
        )
        parser.add_argument(
            "--timeout-seconds",
            type=int,
            default=86_400,
            help="each attempt's deadline after it starts (MATCHING_WORKFLOW_TIMEOUT_SECONDS of the deployment "
            "modelled; default a day, as vetting waits need)",
        )
        parser.add_argument(
            "--executions",
            choices=["all", "durable"],
            default="all",
            help="mirror rows for every dispatched attempt, as dispatch writes them (default), or durable only",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--append", action="store_true", help="add to the searches already there")
        mode.add_argument(
            "--replace",
            action="store_true",
            help="first delete every search and every row that references one (TRUNCATE … CASCADE)",
        )

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                f"seed_scale needs PostgreSQL (DATABASE_URL points at {connection.vendor}): it generates the rows "
                "inside the server, and a million searches are no test for SQLite"
            )
        config = self._config(options)
        existing = Search.objects.count() if Search.objects.exists() else 0
        if existing and not (options["append"] or options["replace"]):
            raise CommandError(
                f"the database already holds {existing:,} searches: pass --append to add to them or --replace "
                "to delete them first"
            )
        offset = existing if options["append"] else 0
        name = connection.settings_dict["NAME"]
        self.stdout.write(
            f"Seeding {config.searches:,} searches into {name} (seed {config.seed}, {config.days} days until "
            f"{config.until:%Y-%m-%d %H:%M} UTC, ~{config.active_count:,} active)"
        )
        started = time.monotonic()
        if not Resort.objects.exists():
            call_command("loaddata", "resorts", verbosity=0)
        with transaction.atomic():
            if options["replace"] and existing:
                self._timed_line("delete existing", lambda: self._truncate(existing))
            key = ApiClientKey.objects.filter(name=SEED_KEY_NAME).first()
            key = key or api_key_create(name=SEED_KEY_NAME, is_trusted_service=True)[0]
            config = replace(config, api_key_id=key.pk)
            reports = ScaleSeed(config, offset=offset, progress=self._progress).run()
            body_done = time.monotonic()
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: PostgreSQL checks every new
        # row's reference at commit, which is a good share of the whole seed.
        self._line("foreign-key checks + commit", time.monotonic() - body_done)
        self._timed_line("vacuum + analyze" if not connection.in_atomic_block else "analyze", self._analyze)
        total = sum(r.rows for r in reports)
        self.stdout.write(self.style.SUCCESS(f"Done: {total:,} rows in {time.monotonic() - started:.1f} s."))
        self._sizes()

    def _config(self, options) -> ScaleConfig:
        if options["searches"] < 1:
            raise CommandError("--searches must be at least 1")
        until = timezone.now()
        if options["until"]:
            try:
                until = datetime.fromisoformat(options["until"])
            except ValueError as exc:
                raise CommandError(f"--until: {exc}") from exc
            if timezone.is_naive(until):
                until = until.replace(tzinfo=UTC)
        if not 0 <= options["timeline_sample"] <= 1:
            raise CommandError("--timeline-sample must be between 0 and 1")
        if options["timeout_seconds"] < 3600:
            raise CommandError("--timeout-seconds must be at least 3600")
        return ScaleConfig(
            searches=options["searches"],
            seed=options["seed"],
            days=options["days"],
            until=until,
            active=options["active"],
            results_per_search=options["results_per_search"],
            timeline_sample=options["timeline_sample"],
            timeout_seconds=options["timeout_seconds"],
            executions=options["executions"],
        )

    def _progress(self, report: TableReport) -> None:
        self.stdout.write(f"  {report.name:<28} {report.rows:>12,} rows {report.seconds:8.1f} s")
        self.stdout.flush()

    def _timed_line(self, name: str, work) -> None:
        started = time.monotonic()
        work()
        self._line(name, time.monotonic() - started)

    def _line(self, name: str, seconds: float) -> None:
        self.stdout.write(f"  {name:<28} {'':>12}      {seconds:8.1f} s")
        self.stdout.flush()

    def _truncate(self, existing: int) -> None:
        with connection.cursor() as cursor:
            # Run any foreign-key checks still pending in this transaction (TRUNCATE refuses them).
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {table(Search)} RESTART IDENTITY CASCADE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        self.stdout.write(f"  deleted {existing:,} searches and every row that referenced them")

    def _analyze(self) -> None:
        # A bulk load leaves hint bits unset and the visibility map empty; production tables are
        # vacuumed, so without this the first reads (and no index-only scan) would not be typical.
        verb = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            for model in SEEDED:
                cursor.execute(f"{verb} {table(model)}")

    def _sizes(self) -> None:
        with connection.cursor() as cursor:
            for model in SEEDED:
                cursor.execute(
                    "SELECT c.reltuples::bigint, pg_size_pretty(pg_total_relation_size(c.oid)) "
                    "FROM pg_class c WHERE c.oid = %s::regclass",
                    [model._meta.db_table],
                )
                rows, size = cursor.fetchone()
                self.stdout.write(f"  {model._meta.db_table:<36} ~{rows:>12,} rows {size:>10}")
