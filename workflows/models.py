from django.db import models
from django.db.models import Q
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

from matching.models import Engine, Search, SearchStatus
from workflows.durable.tracing import trace_id_of


class SearchDispatch(models.Model):
    """The outbox: written in the same transaction as the search (or its retry).

    Sending happens after commit; a row still unsent after a grace period is re-sent by the
    periodic sweeper, so a crash between commit and send loses nothing. Sending twice is
    harmless because the engine claims the search with a conditional update.
    """

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="dispatches", verbose_name=_("search"))
    attempt = models.PositiveIntegerField(_("attempt"))
    engine = models.CharField(_("engine"), max_length=10, choices=Engine.choices)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    send_count = models.PositiveIntegerField(_("send count"), default=0)
    last_error = models.TextField(_("last error"), blank=True)  # in English
    # What `last_error` says as a code and its values when the Durable API client's transport failed
    # (DurableApiError.code/.params; matching.admin.words words it); empty for other errors.
    last_error_code = models.JSONField(_("last error code"), default=dict, blank=True)
    # A durable start failed in a way that may have started it anyway (a timeout, a dropped
    # connection, a 5xx): the next send asks the Durable API for the execution before starting.
    start_uncertain = models.BooleanField(_("start uncertain"), default=False)
    # The W3C traceparent of the request that wrote the record (blank when tracing is off): the
    # relay thread or the sweeper sends it later, elsewhere, in that request's trace.
    traceparent = models.CharField(_("traceparent"), max_length=55, blank=True, default="")

    class Meta:
        verbose_name = _("search dispatch")
        verbose_name_plural = _("search dispatches")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["search", "attempt"], name="dispatch_unique_attempt"),
        ]
        indexes = [
            models.Index(fields=["created_at"], name="dispatch_unsent_idx", condition=Q(sent_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return gettext("%(search)s attempt %(attempt)s via %(engine)s") % {
            "search": self.search_id,
            "attempt": self.attempt,
            "engine": pgettext("engine in a sentence", self.engine),  # matching.admin.words.ENGINE_WORDS
        }

    @property
    def trace_id(self) -> str:
        return trace_id_of(self.traceparent)


class DriftState(models.TextChoices):
    OK = "ok", _("In agreement")
    REPAIRED = "repaired", _("Repaired")
    FLAGGED = "flagged", _("Flagged for staff")
    ACKNOWLEDGED = "acknowledged", _("Flagged, acknowledged by staff")


class WorkflowExecution(models.Model):
    """The console's mirror of one attempt's execution on its engine.

    `version` is the DynamoDB item version last applied; anything older is ignored, so
    callbacks and syncs arriving out of order never roll the picture back.
    """

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="executions", verbose_name=_("search"))
    attempt = models.PositiveIntegerField(_("attempt"))
    engine = models.CharField(_("engine"), max_length=10, choices=Engine.choices)
    execution_name = models.CharField(_("execution name"), max_length=64, blank=True)
    execution_arn = models.CharField(_("execution arn"), max_length=400, blank=True)
    status = models.CharField(_("status"), max_length=20, blank=True)
    version = models.BigIntegerField(_("version"), default=0)
    error = models.TextField(_("error"), blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    last_synced_at = models.DateTimeField(_("last synced at"), null=True, blank=True)
    # Mirror bookkeeping (workflows/mirror/, workflows/durable_console/reconcile.py).
    celery_task_id = models.CharField(_("celery task id"), max_length=255, blank=True)
    item_updated_at = models.DateTimeField(
        _("item updated at"), null=True, blank=True
    )  # the DynamoDB item's updated_at
    history_synced_at = models.DateTimeField(_("history synced at"), null=True, blank=True)
    history_complete = models.BooleanField(
        _("history complete"), default=False
    )  # the execution ended and its history is copied
    drift_state = models.CharField(_("drift state"), max_length=12, choices=DriftState.choices, blank=True)
    drift_reason = models.TextField(_("drift reason"), blank=True)  # in English
    # What `drift_reason` says as a code and the values it names, {"code": …, "params": {…}}
    # (matching.admin.words words it in the staff member's language); empty on older rows.
    drift_reason_code = models.JSONField(_("drift reason code"), default=dict, blank=True)
    drift_checked_at = models.DateTimeField(_("drift checked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("workflow execution")
        verbose_name_plural = _("workflow executions")
        ordering = ["search", "attempt"]
        constraints = [models.UniqueConstraint(fields=["search", "attempt"], name="execution_unique_attempt")]
        indexes = [
            models.Index(fields=["drift_state", "-drift_checked_at"], name="execution_drift_idx"),
            # The console's execution list: newest first (by id), filtered by status.
            models.Index(fields=["status", "-id"], name="execution_status_id_idx"),
            models.Index(
                fields=["last_synced_at"],
                name="execution_history_due_idx",
                condition=Q(history_complete=False) & ~Q(execution_arn=""),
            ),
        ]

    def __str__(self) -> str:
        if self.status in SearchStatus.values:
            status = str(SearchStatus(self.status).label).lower()
        else:
            status = self.status or gettext("unknown")
        return gettext("%(search)s attempt %(attempt)s (%(status)s)") % {
            "search": self.search_id,
            "attempt": self.attempt,
            "status": status,
        }


class WebhookOutcome(models.TextChoices):
    """What a signed workflow callback changed (WebhookDelivery.outcome; not the field's `choices`, so a
    new outcome needs no migration). `received` marks a delivery still being applied."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE_VERSION = "stale_version"
    IGNORED_TERMINAL = "ignored_terminal"
    SUPERSEDED_ATTEMPT = "superseded_attempt"
    NO_TRANSITION = "no_transition"
    UNKNOWN_SEARCH = "unknown_search"
    WRONG_ENGINE = "wrong_engine"
    RECEIVED = "received"


# The outcomes the callback answers with 200 (`{"outcome": ...}`); the others are error answers.
CALLBACK_ANSWER_OUTCOMES = (
    WebhookOutcome.APPLIED,
    WebhookOutcome.DUPLICATE,
    WebhookOutcome.STALE_VERSION,
    WebhookOutcome.IGNORED_TERMINAL,
    WebhookOutcome.SUPERSEDED_ATTEMPT,
    WebhookOutcome.NO_TRANSITION,
)


class WebhookDelivery(models.Model):
    """Each signed callback received, keyed by its `webhook-id`: a redelivery changes nothing."""

    webhook_id = models.CharField(_("webhook id"), max_length=200, unique=True)
    search = models.ForeignKey(
        Search,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_deliveries",
        verbose_name=_("search"),
    )
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    status = models.CharField(_("status"), max_length=20)
    version = models.BigIntegerField(_("version"))
    outcome = models.CharField(_("outcome"), max_length=40)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["search", "-received_at"], name="webhook_search_received_idx"),
            # The console's delivery list: newest first (by id), filtered by outcome or status.
            models.Index(fields=["outcome", "-id"], name="webhook_outcome_id_idx"),
            models.Index(fields=["status", "-id"], name="webhook_status_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} → {self.outcome}"


class TimelineSource(models.TextChoices):
    ITEM = "item", _("DynamoDB item")
    HISTORY = "history", _("Durable execution history")
    CONSOLE = "console", _("Console transition")
    WEBHOOK = "webhook", _("Webhook delivery")


class TimelineKind(models.TextChoices):
    """What a stored timeline line is (ExecutionTimelineEntry.kind; not the field's `choices`): the
    durable engine's steps, waits, callbacks, invocations…, a webhook, or a console transition."""

    STEP = "step"
    WAIT = "wait"
    CALLBACK = "callback"
    EXECUTION = "execution"
    INVOCATION = "invocation"
    INVOKE = "invoke"
    CONTEXT = "context"
    WEBHOOK = "webhook"
    TRANSITION = "transition"
    API = "api"


class ExecutionTimelineEntry(models.Model):
    """One line of an attempt's timeline, copied into the console so it outlives the engine's retention.

    `key` identifies the entry at its source (a history event id, a hash of an item timeline entry,
    a SearchEvent id, a webhook id), so repeated syncs insert each entry once.
    """

    execution = models.ForeignKey(
        WorkflowExecution, on_delete=models.CASCADE, related_name="timeline", verbose_name=_("execution")
    )
    key = models.CharField(_("key"), max_length=120)
    at = models.DateTimeField(_("at"))
    source = models.CharField(_("source"), max_length=10, choices=TimelineSource.choices)
    kind = models.CharField(_("kind"), max_length=20)  # a TimelineKind
    name = models.CharField(_("name"), max_length=200, blank=True)
    event = models.CharField(_("event"), max_length=60)
    detail = models.JSONField(_("detail"), null=True, blank=True)

    class Meta:
        verbose_name = _("execution timeline entry")
        verbose_name_plural = _("execution timeline entries")
        ordering = ["execution", "at", "id"]
        constraints = [models.UniqueConstraint(fields=["execution", "key"], name="timeline_unique_key")]
        indexes = [
            models.Index(fields=["execution", "at"], name="timeline_execution_at_idx"),
            # The console's timeline entry list: newest first (by id), filtered by source or kind.
            models.Index(fields=["source", "-id"], name="timeline_source_id_idx"),
            models.Index(fields=["kind", "-id"], name="timeline_kind_id_idx"),
        ]

    def __str__(self) -> str:
        # The kind in the console's words (matching.admin.words.KIND_WORDS marks them for translation).
        kind = pgettext("timeline kind", self.kind) if self.kind else ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {kind} {self.name} {self.event}".strip()


class SyncWatermark(models.Model):
    """How far a pull sync has read a source: an ISO timestamp (the DynamoDB sync index) or a row id."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    position = models.CharField(_("position"), max_length=64, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    last_full_sync_at = models.DateTimeField(_("last full sync at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sync watermark")
        verbose_name_plural = _("sync watermarks")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.position or '-'}"


class RoutingMode(models.TextChoices):
    ENVIRONMENT = "environment", _("As the environment says")
    CELERY = "celery", _("All new searches to Celery")


class EngineRouting(models.Model):
    """The staff routing switch: one row (pk 1). Absent or `environment` → the environment decides."""

    mode = models.CharField(_("mode"), max_length=20, choices=RoutingMode.choices, default=RoutingMode.ENVIRONMENT)
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)
    changed_by = models.CharField(_("changed by"), max_length=150, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("engine routing")
        verbose_name_plural = _("engine routing")
        permissions = [("switch_routing", "Can switch the routing of new searches")]

    def __str__(self) -> str:
        return self.get_mode_display()
