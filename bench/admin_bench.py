"""Admin page benchmark: server time and SQL query count of the staff console's pages on a filled database.

Long on purpose: a benchmark script is read top to bottom as one procedure.

A script, not a test. Against the database in DATABASE_URL (fill it with `python -m devtools.seed_scale`), it
logs in as a superuser (`bench-admin`, created if missing) with Django's test Client, in process, so
the figure is the server's own time with no network, and requests each page 2 times to warm up,
then `--runs` times (default 15), printing the median wall time, the spread, and the SQL query count
(from a warm request under CaptureQueriesContext, which also names the slowest query).

Pages, discovered from what is registered, so the bench follows the admin as it changes:
  * the search list; the list with each choice of each `list_filter` entry of the registered Search
    admin (the filter specs are instantiated for the changelist, as the page itself does, and each
    choice's query string is requested); sorted by each sortable column, both ways (the query string
    of a click on its header, and reversed); the newest month and day of `date_hierarchy`, if any;
  * the list searched by a search-id prefix, a full search id, a seeker id and a candidate user id;
  * a search page (change view) of a typical finished search, of a retried durable one with a copied
    timeline, and an execution page;
  * the event, execution, result, dispatch, webhook-delivery and timeline lists, then every other
    registered list (with --every-list-page, each with each choice of each of its list filters and
    each sortable column both ways),
    the admin index, and every admin URL whose name contains "dashboard" (skipped with a note when
    there is none).

Pages over 300 ms median are flagged; with --explain the slowest query of each flagged page is run
again under EXPLAIN (ANALYZE, BUFFERS). Slow pages do not fail the script; errors (a page that is
not 200, a missing model) make it exit 1.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scale .venv/bin/python bench/admin_bench.py [--explain]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SLOW_MS = 300.0
MANY_QUERIES = 20  # more on one page usually means a query per row
BENCH_USER = "bench-admin"


@dataclass
class Page:
    label: str
    url: str


@dataclass
class Measurement:
    page: Page
    times_ms: list[float] = field(default_factory=list)
    queries: int = 0
    slowest_sql: str = ""
    slowest_ms: float = 0.0
    captured: list[tuple[float, str]] = field(default_factory=list)  # (ms, sql) of the captured request
    error: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else float("nan")

    @property
    def slow(self) -> bool:
        return not self.error and self.median_ms > SLOW_MS

    @property
    def chatty(self) -> bool:
        return not self.error and self.queries > MANY_QUERIES


# --- discovery --------------------------------------------------------------------------------------


def _admin_url(model, view: str, *args) -> str:
    from django.urls import reverse

    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _changelist(user, model):
    """The changelist of a registered admin, as its page builds it."""
    from django.contrib import admin
    from django.test import RequestFactory
    from django.urls import resolve

    model_admin = admin.site._registry.get(model)
    if model_admin is None:
        raise LookupError(f"no ModelAdmin is registered for {model.__name__}")
    url = _admin_url(model, "changelist")
    request = RequestFactory().get(url)
    request.user = user
    request.resolver_match = resolve(url)
    request.session = {}
    return url, model_admin.get_changelist_instance(request)


def filter_pages(user, notes: list[str], model=None, prefix: str = "filter") -> list[Page]:
    """One page per choice of each list filter of a registered admin (the Search admin unless named),
    as its changelist builds them."""
    from matching.models import Search

    model = model or Search
    url, changelist = _changelist(user, model)
    pages = []
    for spec in changelist.filter_specs:
        title = str(getattr(spec, "title", type(spec).__name__))
        for choice in spec.choices(changelist):
            query = choice.get("query_string") or "?"
            if query in ("?", ""):
                continue  # "All": the plain list
            pages.append(Page(f"{prefix} {title}: {choice.get('display')}", url + query))
    if not pages and model is Search:
        notes.append("the Search admin has no list_filter choices")
    return pages


def sort_pages(user, model=None, prefix: str = "sort") -> list[Page]:
    """Each sortable column of a list (the Search list unless named), as a click on its header sorts
    it, and the other way round (each column's own ordering first, then the list's default)."""
    from django.contrib.admin.templatetags.admin_list import result_headers
    from django.contrib.admin.views.main import ORDER_VAR

    from matching.models import Search

    url, changelist = _changelist(user, model or Search)
    pages = []
    for header in result_headers(changelist):
        if not header.get("sortable"):
            continue
        query = header["url_primary"]  # "?o=3.-7": this column first, in the direction a click asks for
        first, _, rest = query.split(f"{ORDER_VAR}=", 1)[1].partition(".")
        flipped = first[1:] if first.startswith("-") else f"-{first}"
        other = f"?{ORDER_VAR}={flipped}" + (f".{rest}" if rest else "")
        for order, direction in ((query, first), (other, flipped)):
            text = str(header["text"]).strip() or "?"
            pages.append(Page(f"{prefix} {text} {'descending' if direction.startswith('-') else 'ascending'}",
                              url + order))  # fmt: skip
    return pages


def date_hierarchy_pages(notes: list[str]) -> list[Page]:
    from django.contrib import admin
    from django.utils import timezone

    from matching.models import Search

    model_admin = admin.site._registry[Search]
    field_name = model_admin.date_hierarchy
    if not field_name:
        return []
    newest = Search.objects.order_by(f"-{field_name}").values_list(field_name, flat=True).first()
    if newest is None:
        notes.append("no searches: date hierarchy not measured")
        return []
    newest = timezone.localtime(newest)
    url = _admin_url(Search, "changelist")
    month = f"?{field_name}__year={newest.year}&{field_name}__month={newest.month}"
    return [
        Page(f"date hierarchy: {newest:%B %Y}", url + month),
        Page(f"date hierarchy: {newest:%Y-%m-%d}", url + f"{month}&{field_name}__day={newest.day}"),
    ]


@dataclass(frozen=True)
class Samples:
    typical: object  # a finished search with a few results, like most rows of the table
    candidate: str
    timeline_search: object | None
    execution: object | None


def pick_samples() -> Samples:
    """Ordinary rows, found through indexes (no scan of the big tables)."""
    from datetime import timedelta

    from matching.models import Search, SearchResult, SearchStatus
    from workflows.models import ExecutionTimelineEntry, TimelineSource

    newest = Search.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    if newest is None:
        raise LookupError("the database has no searches: fill it with `python -m devtools.seed_scale` first")
    typical = (
        Search.objects.filter(
            status=SearchStatus.SUCCEEDED, created_at__lt=newest - timedelta(days=1), result_count__gte=3
        )
        .order_by("-created_at")
        .first()
    ) or Search.objects.order_by("-created_at").first()
    candidate = (
        SearchResult.objects.filter(search=typical)
        .order_by("attempt", "rank")
        .values_list("user_id", flat=True)
        .first()
        or "u000001"
    )
    entry = (
        ExecutionTimelineEntry.objects.filter(source=TimelineSource.HISTORY, execution__attempt__gte=2)
        .select_related("execution__search")
        .order_by("-id")
        .first()
    ) or ExecutionTimelineEntry.objects.select_related("execution__search").order_by("-id").first()
    return Samples(
        typical=typical,
        candidate=candidate,
        timeline_search=entry.execution.search if entry else None,
        execution=entry.execution if entry else None,
    )


def dashboard_pages(notes: list[str]) -> list[Page]:
    """Every admin URL named like a dashboard that needs no arguments."""
    from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

    names: list[str] = []

    def walk(patterns, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace)
            elif isinstance(pattern, URLPattern) and pattern.name and "dashboard" in pattern.name:
                names.append(f"{namespace}{pattern.name}")

    walk(get_resolver().url_patterns, "")
    pages = []
    for name in dict.fromkeys(names):
        try:
            pages.append(Page(f"dashboard ({name})", reverse(name)))
        except NoReverseMatch:
            notes.append(f"{name} needs arguments: not measured")
    if not pages:
        notes.append("no dashboard: no URL named like 'admin:dashboard' is registered yet")
    return pages


SELECT_LIMIT = 10_000


def _estimated_rows(model) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    return max(int(row[0]), 0) if row else 0


def unbounded_selects(model, obj, user) -> list[str]:
    """Form fields of an admin change page that would render every row of a big table as <option>s."""
    from django import forms
    from django.contrib import admin
    from django.test import RequestFactory

    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = user
    form = model_admin.get_form(request, obj, change=True)
    found = []
    for name, form_field in form.base_fields.items():
        widget = getattr(form_field.widget, "widget", form_field.widget)  # inside RelatedFieldWidgetWrapper
        if isinstance(form_field, forms.ModelChoiceField) and type(widget) in (forms.Select, forms.SelectMultiple):
            rows = _estimated_rows(form_field.queryset.model)
            if rows > SELECT_LIMIT:
                found.append(f"{name} ({rows:,} {form_field.queryset.model._meta.verbose_name_plural})")
    return found


def discover_pages(user, notes: list[str], *, every_list_page: bool = False) -> list[Page]:
    from django.contrib import admin

    from matching.models import Search, SearchEvent, SearchResult
    from workflows.models import ExecutionTimelineEntry, SearchDispatch, WebhookDelivery, WorkflowExecution

    samples = pick_samples()
    search_list = _admin_url(Search, "changelist")
    typical = samples.typical
    pages = [Page("search list", search_list)]
    pages += filter_pages(user, notes)
    pages += sort_pages(user)
    pages += date_hierarchy_pages(notes)
    pages += [
        Page("search: search-id prefix (8 chars)", f"{search_list}?q={str(typical.pk)[:8]}"),
        Page("search: full search id", f"{search_list}?q={typical.pk}"),
        Page("search: seeker id", f"{search_list}?q={typical.seeker_id}"),
        Page("search: candidate user id", f"{search_list}?q={samples.candidate}"),
        Page(f"search page: typical ({typical.result_count} results)", _admin_url(Search, "change", typical.pk)),
    ]
    if samples.timeline_search is not None:
        retried = samples.timeline_search
        pages.append(
            Page(
                f"search page: retried {retried.engine} (attempt {retried.attempt})",
                _admin_url(Search, "change", retried.pk),
            )
        )
        selects = unbounded_selects(WorkflowExecution, samples.execution, user)
        if selects:
            # One such request renders a million <option>s (minutes, gigabytes): a finding, not a figure.
            notes.append(
                f"execution page not measured: its form renders every row as a <select> option: {', '.join(selects)}"
            )
        else:
            pages.append(
                Page("execution page (timeline)", _admin_url(WorkflowExecution, "change", samples.execution.pk))
            )
    else:
        notes.append("no copied timeline: the retried search page and the execution page were not measured")
    short = {
        SearchEvent: "event list",
        WorkflowExecution: "execution list",
        SearchResult: "result list",
        SearchDispatch: "dispatch list",
        WebhookDelivery: "webhook delivery list",
        ExecutionTimelineEntry: "timeline entry list",
    }
    for model in short:
        if model not in admin.site._registry:
            notes.append(f"{model.__name__} has no admin: {short[model]} not measured")
    # Every other registered list too, so the big tables of later work are measured without asking.
    registered = sorted(admin.site._registry, key=lambda m: (m not in short, m._meta.label))
    for model in registered:
        if model is not Search:
            label = short.get(model) or f"{model._meta.verbose_name} list"
            pages.append(Page(label, _admin_url(model, "changelist")))
            if every_list_page:
                pages += filter_pages(user, notes, model, prefix=f"{label}, filter")
                pages += sort_pages(user, model, prefix=f"{label}, sort")
    pages.append(Page("admin index", "/admin/"))
    pages += dashboard_pages(notes)
    return pages


# --- measuring ----------------------------------------------------------------------------------------


def measure(client, page: Page, *, runs: int, warmups: int) -> Measurement:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    result = Measurement(page)

    def get(capture: bool = False):
        if capture:
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(page.url)
            return response, ctx.captured_queries
        return client.get(page.url), None

    try:
        for _ in range(max(warmups - 1, 0)):
            get()
        # The last warm-up, captured: the query count of a warm request (timed runs stay uncaptured).
        response, queries = get(capture=True)
        if response.status_code != 200:
            result.error = f"HTTP {response.status_code}" + (
                f" → {response['Location']}" if response.has_header("Location") else ""
            )
            return result
        result.queries = len(queries)
        result.captured = [(float(q.get("time") or 0) * 1000, q["sql"]) for q in queries]
        if queries:
            slowest = max(queries, key=lambda q: float(q.get("time") or 0))
            result.slowest_sql, result.slowest_ms = slowest["sql"], float(slowest.get("time") or 0) * 1000
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(page.url)
            result.times_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code} on a timed run"
                return result
    except Exception as exc:  # a page that raises is a finding to print, not a reason to stop measuring
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    return result


def explain(sql: str) -> str:
    from django.db import connection, transaction

    if not sql.lstrip().upper().startswith("SELECT"):
        return "(not a SELECT: not explained)"
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan


def _row(m: Measurement) -> str:
    if m.error:
        return f"{m.page.label[:52]:<52}  ERROR {m.error}"
    t = sorted(m.times_ms)
    p90 = t[min(len(t) - 1, round(0.9 * (len(t) - 1)))]
    flag = " ".join(f for f, on in (("SLOW", m.slow), ("MANY-QUERIES", m.chatty)) if on)
    return (
        f"{m.page.label[:52]:<52}  {m.median_ms:>9.1f}  {t[0]:>8.1f}  {p90:>8.1f}  {m.queries:>7}  "
        f"{m.slowest_ms:>10.1f}  {flag}"
    )


HEADER = f"{'page':<52}  {'median ms':>9}  {'min ms':>8}  {'p90 ms':>8}  {'queries':>7}  {'slowest q ms':>10}  flag"


# --- the script ----------------------------------------------------------------------------------------


def _setup_django() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must name the filled PostgreSQL database (see `python -m devtools.seed_scale`)")
    os.environ["DJANGO_DEBUG"] = "false"  # production settings: no query log, no debug templates
    hosts = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
    os.environ["ALLOWED_HOSTS"] = f"{hosts},testserver"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")
    import django

    django.setup()


def _bench_user():
    from django.contrib.auth import get_user_model

    user, created = get_user_model().objects.get_or_create(
        username=BENCH_USER, defaults={"is_staff": True, "is_superuser": True, "email": "bench@example.invalid"}
    )
    if not (user.is_staff and user.is_superuser):
        raise SystemExit(f"the user {BENCH_USER!r} exists but is not a superuser")
    return user, created


def _context() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        cursor.execute("SHOW shared_buffers")
        buffers = cursor.fetchone()[0]
        counts = []
        for table in (
            "matching_search",
            "matching_searchevent",
            "matching_searchresult",
            "workflows_workflowexecution",
        ):
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table])
            row = cursor.fetchone()
            counts.append(f"{table} ~{row[0]:,}" if row else f"{table} missing")
    return (
        f"PostgreSQL {version} (shared_buffers {buffers}), database {connection.settings_dict['NAME']}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}\n" + ", ".join(counts)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed requests per page (default 15)")
    parser.add_argument("--warmups", type=int, default=2, help="untimed requests first (default 2)")
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN (ANALYZE, BUFFERS) each slow page's slowest query"
    )
    parser.add_argument(
        "--queries",
        action="store_true",
        help=f"list every query (ms, SQL) of each slow page or one with > {MANY_QUERIES}",
    )
    parser.add_argument(
        "--every-list-page",
        action="store_true",
        help="also each filter choice and each sortable column of every other registered list (~200 more pages)",
    )
    parser.add_argument("--only", help="measure only pages whose label contains one of these comma-separated texts")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmups < 1:
        parser.error("--runs and --warmups must be at least 1")

    _setup_django()
    from django.test import Client

    print(_context())
    user, created = _bench_user()
    if created:
        print(f"created the superuser {BENCH_USER!r} (no password; the bench logs in with force_login)")
    if args.runs < 15:
        print(f"note: {args.runs} runs per page; the documented figures use 15")
    client = Client()
    client.force_login(user)
    notes: list[str] = []
    pages = discover_pages(user, notes, every_list_page=args.every_list_page)
    if args.only:
        wanted = [text.strip() for text in args.only.split(",") if text.strip()]
        pages = [p for p in pages if any(text in p.label for text in wanted)]
    print(
        f"{len(pages)} pages, {args.warmups} warm-ups + {args.runs} timed requests each; "
        f"slow: median > {SLOW_MS:.0f} ms"
    )
    print(HEADER)
    print("-" * len(HEADER))
    started = time.monotonic()
    measurements = []
    for page in pages:
        m = measure(client, page, runs=args.runs, warmups=args.warmups)
        measurements.append(m)
        print(_row(m), flush=True)
    print("-" * len(HEADER))
    slow = [m for m in measurements if m.slow]
    errors = [m for m in measurements if m.error]
    print(
        f"{len(measurements)} pages in {time.monotonic() - started:.0f} s: {len(slow)} over {SLOW_MS:.0f} ms, "
        f"{len(errors)} errors; load {os.getloadavg()[0]:.2f} (a shared machine: figures are provisional)"
    )
    for note in notes:
        print(f"note: {note}")
    if args.queries:
        for m in [m for m in measurements if m.slow or m.chatty]:
            print(f"\n=== {m.page.label}: {m.median_ms:.0f} ms median; its {m.queries} queries (one warm request)")
            for ms, sql in m.captured:
                print(f"{ms:8.1f} ms  {sql[:400]}")
    if args.explain:
        for m in slow:
            print(f"\n=== {m.page.label}: {m.median_ms:.0f} ms median, slowest query {m.slowest_ms:.0f} ms")
            print(m.slowest_sql)
            print("---")
            try:
                print(explain(m.slowest_sql))
            except Exception as exc:  # print and go on: the other plans are still worth reading
                print(f"(EXPLAIN failed: {type(exc).__name__}: {exc})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
