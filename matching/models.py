"""The matching domain's tables and their enums: searches with their events, results, vetting and
notifications; candidate profiles and resorts; API keys; match requests and their user events; staff
actions and preferences. Every write goes through `matching.services`.

Long on purpose: Django finds an app's models in one `models` module, and the enums sit beside the
tables that store them.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KT
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from matching.vocabulary.regions import KNOWN_REGIONS


class Resort(models.Model):
    id = models.SlugField(_("id"), primary_key=True, max_length=64)
    name = models.CharField(_("name"), max_length=200)
    name_en = models.CharField(_("name en"), max_length=200)
    name_ja = models.CharField(_("name ja"), max_length=200, blank=True)
    region = models.CharField(_("region"), max_length=100, choices=[(r, r) for r in KNOWN_REGIONS])
    country = models.CharField(_("country"), max_length=2, default="JP")

    class Meta:
        verbose_name = _("resort")
        verbose_name_plural = _("resorts")
        ordering = ["region", "name_en"]
        indexes = [models.Index(fields=["region"], name="resort_region_idx")]

    def __str__(self) -> str:
        return self.name_en


class Role(models.TextChoices):
    BUDDY = "buddy", _("Buddy")
    STUDENT = "student", _("Student")
    COACH = "coach", _("Coach")


class SkierProfile(models.Model):
    """A candidate. Set-valued fields are JSON lists in the engine's own wire form.

    Every write goes through matching.services (profile_upsert / profiles_upsert_many /
    profile_close / profile_delete), which stamps `updated_at` with the database's clock: the
    warm candidate index (matching/candidates/warm_index.py) follows changes by that stamp. A deleted
    profile stays as a tombstone (`deleted_at` set, personal fields cleared, closed) so the
    index sees the delete; tombstones are purged after MATCHING_PROFILE_TOMBSTONE_DAYS.
    """

    user_id = models.CharField(_("user id"), max_length=64, unique=True)
    nickname = models.CharField(_("nickname"), max_length=64)
    skill_level = models.PositiveSmallIntegerField(_("skill level"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    resorts = models.JSONField(_("resorts"), default=list, blank=True)
    regions = models.JSONField(_("regions"), default=list, blank=True)
    available_dates = models.JSONField(_("available dates"), default=list, blank=True)
    open_to_matching = models.BooleanField(_("open to matching"), default=True)
    knowledge_score = models.PositiveSmallIntegerField(_("knowledge score"), null=True, blank=True)
    certifications = models.JSONField(_("certifications"), default=list, blank=True)
    languages = models.JSONField(_("languages"), default=list, blank=True)
    # Bit i set when the profile reaches region i (its regions plus its resorts' regions);
    # lets the database prefilter location overlap with one bitwise AND. Written by
    # matching.services.profiles.profile_upsert.
    region_mask = models.BigIntegerField(_("region mask"), default=0)
    updated_at = models.DateTimeField(_("updated at"), db_default=Now())
    deleted_at = models.DateTimeField(_("deleted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("skier profile")
        verbose_name_plural = _("skier profiles")
        ordering = ["user_id"]
        constraints = [
            models.CheckConstraint(condition=Q(skill_level__gte=1, skill_level__lte=10), name="profile_skill_1_10"),
            models.CheckConstraint(
                condition=Q(knowledge_score__isnull=True) | Q(knowledge_score__lte=100),
                name="profile_knowledge_0_100",
            ),
        ]
        indexes = [
            models.Index(fields=["open_to_matching", "skill_level"], name="profile_open_skill_idx"),
            models.Index(fields=["role"], name="profile_role_idx"),
            # The warm candidate index's change cursor.
            models.Index(fields=["updated_at", "id"], name="profile_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.nickname} ({self.user_id})"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class SearchStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DISPATCHED = "dispatched", _("Dispatched")
    RUNNING = "running", _("Running")
    AWAITING_VETTING = "awaiting_vetting", _("Awaiting vetting")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    TIMED_OUT = "timed_out", _("Timed out")


TERMINAL_STATUSES = frozenset(
    {SearchStatus.SUCCEEDED, SearchStatus.FAILED, SearchStatus.CANCELLED, SearchStatus.TIMED_OUT}
)
ACTIVE_STATUSES = frozenset(set(SearchStatus) - TERMINAL_STATUSES)


class Engine(models.TextChoices):
    CELERY = "celery", _("Celery")
    DURABLE = "durable", _("Durable (Lambda)")


class Search(models.Model):
    search_id = models.UUIDField(_("search id"), primary_key=True, default=uuid.uuid4, editable=False)
    # Verbose names label the console's columns and filters in the staff member's language.
    seeker_id = models.CharField(_("seeker id"), max_length=64)
    preferences = models.JSONField(_("preferences"))
    status = models.CharField(_("status"), max_length=20, choices=SearchStatus.choices, default=SearchStatus.PENDING)
    engine = models.CharField(_("engine"), max_length=10, choices=Engine.choices)
    attempt = models.PositiveIntegerField(_("attempt"), default=1)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    deadline_at = models.DateTimeField(_("deadline at"))
    error = models.TextField(_("error"), blank=True)
    result_count = models.PositiveIntegerField(_("result count"), default=0)
    # The API key the search was submitted with (None: made in the console, or before keys were
    # recorded). Keys are revoked, never deleted; SET_NULL only guards a manual delete.
    api_key = models.ForeignKey(
        "ApiClientKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="searches",
        verbose_name=_("api key"),
    )
    # Staff-attention markers, kept by the services that raise and clear them (the drift check,
    # the mirror, a drift acknowledgement), so the console's "needs attention" filter is one
    # small partial index rather than a join into the mirror.
    drift_flagged = models.BooleanField(_("drift flagged"), default=False)
    callback_dead_lettered = models.BooleanField(_("callback dead lettered"), default=False)
    # The Celery engine's lease (workflows/celery_engine/heartbeat.py, docs/RELIABILITY.md): whoever holds the current
    # `claim_generation` may run and finish the attempt until `lease_expires_at`; a worker renews it
    # while it runs, and an expired lease is re-dispatched under a new generation.
    claim_generation = models.PositiveIntegerField(_("claim generation"), default=0)
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    lease_owner = models.CharField(_("lease owner"), max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("search")
        verbose_name_plural = _("searches")
        indexes = [
            models.Index(fields=["seeker_id", "-created_at"], name="search_seeker_created_idx"),
            models.Index(fields=["status", "-created_at"], name="search_status_created_idx"),
            models.Index(fields=["engine", "-created_at"], name="search_engine_created_idx"),
            models.Index(fields=["-created_at"], name="search_created_idx"),
            models.Index(fields=["status", "deadline_at"], name="search_status_deadline_idx"),
            # The console's role filter reads the sought role out of the preferences.
            models.Index(KT("preferences__role"), models.F("created_at").desc(), name="search_role_created_idx"),
            # "Needs attention": flagged searches, and unfinished ones idle past the stuck threshold.
            models.Index(
                fields=["-created_at"],
                name="search_attention_idx",
                condition=Q(drift_flagged=True) | Q(callback_dead_lettered=True),
            ),
            models.Index(
                fields=["updated_at"],
                name="search_idle_active_idx",
                condition=Q(status__in=["pending", "dispatched", "running"]),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="search_lease_due_idx",
                condition=Q(status__in=["dispatched", "running"]),
            ),
        ]
        permissions = [
            ("retry_search", "Can retry a search or rerun it on the other engine"),
            ("cancel_search", "Can cancel a running or waiting search"),
            ("intervene_search", "Can answer a pending vetting request"),
            ("resync_search", "Can resync a search's mirror from DynamoDB"),
            ("acknowledge_drift", "Can acknowledge a drift flag"),
            ("export_search", "Can export search results"),
        ]

    def __str__(self) -> str:  # the admin's title and links: the status in the reader's words
        return f"{self.search_id} ({_status_words(self.status)})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class SearchResult(models.Model):
    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="results", verbose_name=_("search"))
    attempt = models.PositiveIntegerField(_("attempt"))
    rank = models.PositiveIntegerField(_("rank"))
    user_id = models.CharField(_("user id"), max_length=64)
    nickname = models.CharField(_("nickname"), max_length=64, blank=True)
    score = models.FloatField(_("score"))
    breakdown = models.JSONField(_("breakdown"))

    class Meta:
        verbose_name = _("search result")
        verbose_name_plural = _("search results")
        ordering = ["search", "attempt", "rank"]
        # "Searches in which this person was a result" (the console's candidate search).
        indexes = [models.Index(fields=["user_id"], name="result_user_idx")]
        constraints = [
            models.UniqueConstraint(fields=["search", "attempt", "user_id"], name="result_unique_candidate"),
            models.UniqueConstraint(fields=["search", "attempt", "rank"], name="result_unique_rank"),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.user_id} {self.score:.2f}"


class ApiClientKey(models.Model):
    """A SnowTrace backend's API key. Only a SHA-256 hash is stored; the key is shown once."""

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    # Unique, so a key is found by its digest whatever its format (matching/api/authentication.py).
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    # After this moment the key is refused with a 401 saying so; none means it never expires.
    expires_at = models.DateTimeField(
        _("expires at"),
        null=True,
        blank=True,
        help_text=_("Empty: the key does not expire. In your own time zone."),
    )
    note = models.TextField(_("note"), blank=True, help_text=_("Who holds the key, where it is stored, why it exists."))
    # A SnowTrace service (not a user-facing client): may name the acting user in X-User-Id and
    # push profiles. Set by staff in the admin.
    is_trusted_service = models.BooleanField(_("trusted service"), default=False)
    # Carried over from SnowTrace (`create_api_key --from-env`): the key has SnowTrace's format, and
    # `prefix` is a random label (`imp_…`), not part of the key.
    imported = models.BooleanField(_("imported from SnowTrace"), default=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API client key")
        verbose_name_plural = _("API client keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class SearchEventKind(models.TextChoices):
    """Every kind of search event the code writes (the one list: writers, filters, the admin's list
    filter, the scale seeder, the metrics collector). Not the field's `choices`: the stored strings are
    free text, so adding a kind needs no migration. The labels are the console's words for them."""

    SUBMITTED = "submitted", pgettext_lazy("search event", "submitted")
    DISPATCHED = "dispatched", pgettext_lazy("search event", "dispatched")
    CLAIMED = "claimed", pgettext_lazy("search event", "claimed")
    RUNNING = "running", pgettext_lazy("search event", "running")
    AWAITING_VETTING = "awaiting_vetting", pgettext_lazy("search event", "awaiting vetting")
    SUCCEEDED = "succeeded", pgettext_lazy("search event", "succeeded")
    FAILED = "failed", pgettext_lazy("search event", "failed")
    CANCELLED = "cancelled", pgettext_lazy("search event", "cancelled")
    TIMED_OUT = "timed_out", pgettext_lazy("search event", "timed out")
    RETRIED = "retried", pgettext_lazy("search event", "retried")
    LEASE_EXPIRED = "lease_expired", pgettext_lazy("search event", "lease expired")
    FAILED_OVER = "failed_over", pgettext_lazy("search event", "failed over")
    START_RESOLVED = "start_resolved", pgettext_lazy("search event", "start resolved")
    REMOTE_CANCEL = "remote_cancel", pgettext_lazy("search event", "remote cancel")
    INTERVENED = "intervened", pgettext_lazy("search event", "intervened")
    DRIFT_FLAGGED = "drift_flagged", pgettext_lazy("search event", "drift flagged")
    DRIFT_ACKNOWLEDGED = "drift_acknowledged", pgettext_lazy("search event", "drift acknowledged")
    NOTIFICATION_REDELIVERY = "notification_redelivery", pgettext_lazy("search event", "notification redelivery")


# Who caused an event (SearchEvent.actor): a staff member is "staff:<username>".
STAFF_ACTOR_PREFIX = "staff:"


def staff_actor(username: str) -> str:
    """The actor string of a staff member's action, as the audit trail stores it."""
    return f"{STAFF_ACTOR_PREFIX}{username}"


def _status_words(status: str) -> str:
    """A stored search status as the console words it ("awaiting vetting", 等待審核); else as stored."""
    return str(SearchStatus(status).label).lower() if status in SearchStatus.values else status


def _kind_words(kind: str) -> str:
    return str(SearchEventKind(kind).label) if kind in SearchEventKind.values else kind


class SearchEvent(models.Model):
    """An append-only audit line: every lifecycle transition, and who or what caused it."""

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="events", verbose_name=_("search"))
    attempt = models.PositiveIntegerField(_("attempt"))
    at = models.DateTimeField(_("at"), auto_now_add=True)
    kind = models.CharField(_("kind"), max_length=40)
    from_status = models.CharField(_("from status"), max_length=20, blank=True)
    to_status = models.CharField(_("to status"), max_length=20, blank=True)
    actor = models.CharField(_("actor"), max_length=150, default="system")
    detail = models.TextField(_("detail"), blank=True)

    class Meta:
        verbose_name = _("search event")
        verbose_name_plural = _("search events")
        ordering = ["search", "at", "id"]
        indexes = [
            models.Index(fields=["search", "at"], name="event_search_at_idx"),
            # The console's event list: newest first (by id), filtered by kind.
            models.Index(fields=["kind", "-id"], name="event_kind_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{_kind_words(self.kind)} {_status_words(self.from_status)}→{_status_words(self.to_status)}"


class NotificationState(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    DEAD_LETTER = "dead_letter", _("Dead letter")


class SearchNotification(models.Model):
    """The outbox of completion notifications to SnowTrace: one row per finished attempt, written in
    the same transaction as the finishing transition; the engine layer delivers it after commit
    (workflows/outbound/notifications.py), retrying on timeouts and 5xx until `retry_until`, then dead-letters it.
    """

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("search"))
    attempt = models.PositiveIntegerField(_("attempt"))
    status = models.CharField(_("status"), max_length=20, choices=SearchStatus.choices)
    state = models.CharField(
        _("state"), max_length=12, choices=NotificationState.choices, default=NotificationState.PENDING
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)  # when a pending row is due
    retry_until = models.DateTimeField(
        _("retry until"), null=True, blank=True
    )  # set by the first try; then dead letter
    last_attempt_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)  # delivered (a 2xx)
    tries = models.PositiveIntegerField(_("tries"), default=0)
    last_status_code = models.PositiveSmallIntegerField(_("last status code"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("search notification")
        verbose_name_plural = _("search notifications")
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["search", "attempt"], name="notification_unique_attempt")]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="notification_due_idx",
                condition=Q(state="pending"),
            ),
            models.Index(fields=["state", "-created_at"], name="notification_state_created_idx"),
            # The console's notification list: newest first (by id), filtered by the search's status.
            models.Index(fields=["status", "-id"], name="notification_status_id_idx"),
        ]
        permissions = [("redeliver_searchnotification", "Can redeliver a completion notification to SnowTrace")]

    def __str__(self) -> str:
        return gettext("%(search)s attempt %(attempt)s %(status)s (%(state)s)") % {
            "search": self.search_id,
            "attempt": self.attempt,
            "status": _status_words(self.status),
            "state": self.get_state_display(),
        }

    @property
    def webhook_id(self) -> str:
        """The Standard Webhooks `webhook-id`: the same on every try, so receivers can dedupe."""
        return f"msg_{uuid.UUID(str(self.search_id)).hex}_{self.attempt}"


class SearchVetting(models.Model):
    """A Celery-engine search's GlobalCoach vetting request: one per attempt of a vetted coach search.

    It is also the outbox of the request (sent after the commit that moved the search to
    `awaiting_vetting`, re-sent by beat until it is acknowledged) and the record of the answer.
    Only the SHA-256 of the callback token is stored; with the console's secret key, `token_nonce`
    lets the sender re-derive the same token for a resend.
    """

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="vettings", verbose_name=_("search"))
    attempt = models.PositiveIntegerField(_("attempt"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    deadline_at = models.DateTimeField(_("deadline at"))
    candidates = models.JSONField(_("candidates"))  # the top matches sent for vetting, best first, with nicknames
    token_nonce = models.CharField(_("token nonce"), max_length=64)
    token_sha256 = models.CharField(_("token sha256"), max_length=64)
    # The request (outbox)
    request_next_at = models.DateTimeField(_("request next at"), null=True, blank=True)
    request_tries = models.PositiveIntegerField(_("request tries"), default=0)
    request_error = models.TextField(_("request error"), blank=True)
    requested_at = models.DateTimeField(_("requested at"), null=True, blank=True)
    provider_request_id = models.CharField(_("provider request id"), max_length=100, blank=True)
    # The answer
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    answered_by = models.CharField(_("answered by"), max_length=150, blank=True)
    approved_user_ids = models.JSONField(_("approved user ids"), default=list, blank=True)
    rejected_user_ids = models.JSONField(_("rejected user ids"), default=list, blank=True)

    class Meta:
        verbose_name = _("search vetting")
        verbose_name_plural = _("search vettings")
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["search", "attempt"], name="vetting_unique_attempt")]
        indexes = [
            models.Index(
                fields=["request_next_at"],
                name="vetting_request_due_idx",
                condition=Q(requested_at__isnull=True, answered_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return gettext("vetting of %(search)s attempt %(attempt)s") % {
            "search": self.search_id,
            "attempt": self.attempt,
        }

    @property
    def candidate_ids(self) -> list[str]:
        return [c["user_id"] for c in self.candidates]


class StaffActionKind(models.TextChoices):
    RETRY = "retry", _("Retry")
    CANCEL = "cancel", _("Cancel")
    INTERVENE = "intervene", _("Answer vetting")
    RESYNC = "resync", _("Resync mirror")
    ACKNOWLEDGE_DRIFT = "acknowledge_drift", _("Acknowledge drift")
    EXPORT = "export", _("Export results")
    ROUTING = "routing", _("Switch routing")


class StaffActionOutcome(models.TextChoices):
    DONE = "done", _("Done")
    SKIPPED = "skipped", _("Skipped")
    FAILED = "failed", _("Failed")


class StaffAction(models.Model):
    """The audit trail of the staff console: who did what to which search, why, and what came of it."""

    at = models.DateTimeField(_("at"), auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("user")
    )
    username = models.CharField(_("username"), max_length=150)  # kept even if the user is deleted
    action = models.CharField(_("action"), max_length=20, choices=StaffActionKind.choices)
    search = models.ForeignKey(
        Search, on_delete=models.CASCADE, null=True, blank=True, related_name="staff_actions", verbose_name=_("search")
    )
    attempt = models.PositiveIntegerField(_("attempt"), null=True, blank=True)
    reason = models.TextField(_("reason"))
    parameters = models.JSONField(
        _("parameters"), default=dict, blank=True
    )  # engine, decision, approved ids, routing mode
    status_before = models.CharField(_("status before"), max_length=40, blank=True)
    status_after = models.CharField(_("status after"), max_length=40, blank=True)
    outcome = models.CharField(_("outcome"), max_length=10, choices=StaffActionOutcome.choices)
    detail = models.TextField(_("detail"), blank=True)  # in English
    # What `detail` says as a code and the values it names (matching.admin.words words it in the
    # staff member's language); empty for a message from another system or an older record.
    detail_code = models.JSONField(_("detail code"), default=dict, blank=True)

    class Meta:
        verbose_name = _("staff action")
        verbose_name_plural = _("staff actions")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["search", "at"], name="staffaction_search_at_idx"),
            models.Index(fields=["-at"], name="staffaction_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.username} {self.get_action_display()} {self.search_id or ''} → {self.get_outcome_display()}"


class ProfileSyncState(models.Model):
    """Progress of `sync_profiles` for one source: the resume point of a run and its report.

    A run writes each page of profiles and advances `cursor` in the same transaction, so a
    crash loses at most the page in flight and the next run resumes after the last page written.
    """

    source = models.CharField(_("source"), primary_key=True, max_length=32)
    run_started_at = models.DateTimeField(_("run started at"), null=True, blank=True)  # set while a run is unfinished
    run_mode = models.CharField(_("run mode"), max_length=12, blank=True)  # full | incremental
    run_since = models.DateTimeField(_("run since"), null=True, blank=True)  # incremental runs: changes since this
    cursor = models.TextField(_("cursor"), blank=True)  # the user service's next-page cursor; "" = first page
    pages_done = models.PositiveIntegerField(_("pages done"), default=0)
    counts = models.JSONField(_("counts"), default=dict, blank=True)  # the unfinished run's counters
    rejections = models.JSONField(_("rejections"), default=list, blank=True)  # the latest rejected records and why
    watermark = models.DateTimeField(_("watermark"), null=True, blank=True)  # start of the last complete run
    last_completed_at = models.DateTimeField(_("last completed at"), null=True, blank=True)
    last_report = models.JSONField(_("last report"), default=dict, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    # One run at a time: a run holds the lease and renews it every page; a crashed run's lease expires.
    lease_owner = models.CharField(_("lease owner"), max_length=100, blank=True)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("profile sync state")
        verbose_name_plural = _("profile sync states")

    def __str__(self) -> str:
        return self.source


class SubmitIdempotencyKey(models.Model):
    """An `Idempotency-Key` a user sent with a submit (IETF httpapi draft): the unique (user, key)
    row is written in the same transaction as the search, so a retried or concurrent request with
    the same key finds the first one's search instead of creating another."""

    seeker_id = models.CharField(_("seeker id"), max_length=64)
    key = models.CharField(_("key"), max_length=255)
    fingerprint = models.CharField(_("fingerprint"), max_length=64)  # SHA-256 of the canonical JSON request body
    search = models.ForeignKey(
        Search, on_delete=models.CASCADE, null=True, related_name="idempotency_keys", verbose_name=_("search")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("submit idempotency key")
        verbose_name_plural = _("submit idempotency keys")
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["seeker_id", "key"], name="idempotency_unique_user_key")]
        indexes = [
            models.Index(fields=["created_at"], name="idempotency_created_idx"),
            models.Index(fields=["key"], name="idempotency_key_idx"),  # the admin's exact search
        ]

    def __str__(self) -> str:
        return f"{self.seeker_id} {self.key}"


class MatchRequestStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class MatchRequest(models.Model):
    """One person asking another to ski together (`POST /requests`): pending until the target
    accepts or declines it, or the requester withdraws it. Each answer is final."""

    request_id = models.UUIDField(_("request id"), primary_key=True, default=uuid.uuid4, editable=False)
    requester_id = models.CharField(_("requester id"), max_length=64)
    target_user_id = models.CharField(_("target user id"), max_length=64)
    status = models.CharField(
        _("status"), max_length=10, choices=MatchRequestStatus.choices, default=MatchRequestStatus.PENDING
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)  # accepted, declined or withdrawn

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("match request")
        verbose_name_plural = _("match requests")
        constraints = [
            # A second send while one is pending returns that one; this holds it under concurrency too.
            models.UniqueConstraint(
                fields=["requester_id", "target_user_id"],
                condition=Q(status="pending"),
                name="matchrequest_one_pending",
            ),
            models.CheckConstraint(condition=~Q(requester_id=models.F("target_user_id")), name="matchrequest_not_self"),
        ]
        indexes = [
            # Each party's list (GET /requests?role=sent|received), newest first.
            models.Index(fields=["requester_id", "-created_at"], name="matchrequest_requester_idx"),
            models.Index(fields=["target_user_id", "-created_at"], name="matchrequest_target_idx"),
            # The console's list: newest first, filtered by status.
            models.Index(fields=["status", "-created_at"], name="matchrequest_status_idx"),
            models.Index(fields=["-created_at"], name="matchrequest_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.requester_id} → {self.target_user_id} ({self.get_status_display()})"  # the admin's title


class UserEventType(models.TextChoices):
    """The behaviour events SnowTrace's user service records (the old service's event types)."""

    REQUEST_SENT = "snowbuddy.match.request.sent", _("Request sent")
    REQUEST_ACCEPTED = "snowbuddy.match.request.accepted", _("Request accepted")
    REQUEST_DECLINED = "snowbuddy.match.request.declined", _("Request declined")


class UserEvent(models.Model):
    """The outbox of behaviour events to SnowTrace's user service (`POST {USER_CORE_API_URL}/events`):
    written in the transaction that changes a match request, delivered after commit and by beat's
    sweep (workflows/outbound/user_events.py), retried with backoff until `retry_until`, then dead-lettered.
    The delivery columns are those of `SearchNotification`, so both outboxes share one retry policy."""

    # the receiver may dedupe on it
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, unique=True, editable=False)
    match_request = models.ForeignKey(
        MatchRequest, on_delete=models.CASCADE, related_name="events", verbose_name=_("match request")
    )
    event_type = models.CharField(_("event type"), max_length=64, choices=UserEventType.choices)
    body = models.JSONField(_("body"))  # the exact event the user service gets, fixed when written
    state = models.CharField(
        _("state"), max_length=12, choices=NotificationState.choices, default=NotificationState.PENDING
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    retry_until = models.DateTimeField(_("retry until"), null=True, blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    tries = models.PositiveIntegerField(_("tries"), default=0)
    last_status_code = models.PositiveSmallIntegerField(_("last status code"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("user event")
        verbose_name_plural = _("user events")
        indexes = [
            models.Index(fields=["next_attempt_at"], name="userevent_due_idx", condition=Q(state="pending")),
            models.Index(fields=["state", "-id"], name="userevent_state_id_idx"),
            models.Index(fields=["event_type", "-id"], name="userevent_type_id_idx"),
        ]
        permissions = [("redeliver_userevent", "Can redeliver a behaviour event to SnowTrace's user service")]

    def __str__(self) -> str:
        return gettext("%(event_type)s of %(request)s (%(state)s)") % {
            "event_type": self.get_event_type_display(),
            "request": self.match_request_id,
            "state": self.get_state_display(),
        }


class StaffPreference(models.Model):
    """A staff member's console language and time zone (matching.admin.preferences reads it per request).

    No row: the browser's Accept-Language and STAFF_TIME_ZONE decide.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_preference", verbose_name=_("user")
    )
    language = models.CharField(_("language"), max_length=16, choices=settings.LANGUAGES)
    time_zone = models.CharField(_("time zone"), max_length=64)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("staff preference")
        verbose_name_plural = _("staff preferences")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language}, {self.time_zone}"
