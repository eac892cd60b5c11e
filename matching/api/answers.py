"""What the API answers: searches in both versions, SnowTrace's shapes, resorts and /health."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matching.models import TERMINAL_STATUSES, Resort, Role, Search, SearchResult, SearchStatus
from matching.selectors import snowtrace_answer
from matching.vocabulary.regions import REGION_CHOICES


class SearchResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = SearchResult
        fields = ["rank", "user_id", "nickname", "score", "breakdown"]


class InputWarningSerializer(serializers.Serializer):
    """Something in an original-shape body the console did not use: a field it ignored (`ignored`)
    or a resort or region name that resolves to nothing (`unknown_location`, `ambiguous_location`)."""

    field = serializers.CharField()
    value = serializers.CharField(required=False, help_text="The name, for a location warning.")
    reason = serializers.ChoiceField(choices=["ignored", "unknown_location", "ambiguous_location"])


class SearchSubmittedSerializer(serializers.ModelSerializer):
    warnings = InputWarningSerializer(many=True, required=False, help_text="Only when there are any.")

    class Meta:
        model = Search
        fields = ["search_id", "status", "engine", "warnings"]


class SearchSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Search
        fields = [
            "search_id",
            "status",
            "engine",
            "attempt",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
            "result_count",
            "error",
        ]


class SearchDetailSerializer(SearchSummarySerializer):
    results = serializers.SerializerMethodField()

    class Meta(SearchSummarySerializer.Meta):
        fields = [*SearchSummarySerializer.Meta.fields, "preferences", "results"]

    def get_results(self, search: Search) -> list[dict]:
        rows = search.results.filter(attempt=search.attempt).order_by("rank")
        return SearchResultSerializer(rows, many=True).data


class SnowTraceStatus:
    """The old service knew two states; SnowTrace's smart-matching page reads a third, `failed`.
    Every console state maps onto them: a search that failed or timed out is `failed`, any other
    finished search is `completed` (with no results unless it succeeded)."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CHOICES = [(PROCESSING, "Processing"), (COMPLETED, "Completed"), (FAILED, "Failed")]
    FAILURES = frozenset({SearchStatus.FAILED, SearchStatus.TIMED_OUT})

    @classmethod
    def of(cls, status: str) -> str:
        if status in cls.FAILURES:
            return cls.FAILED
        return cls.COMPLETED if status in TERMINAL_STATUSES else cls.PROCESSING


class SnowTraceMatchSerializer(serializers.Serializer):
    """One result as the old service gave it (its `MatchSummary`)."""

    user_id = serializers.CharField()
    nickname = serializers.CharField()
    skill_level = serializers.IntegerField(min_value=1, max_value=10)
    self_role = serializers.ChoiceField(choices=Role.choices)
    match_score = serializers.FloatField()


class BrowserBreakdownSerializer(serializers.Serializer):
    """The score's parts under the names SnowTrace's MatchScoreCard reads (0..1 each)."""

    skill_score = serializers.FloatField()
    location_score = serializers.FloatField()
    time_score = serializers.FloatField(help_text="The availability part.")
    role_score = serializers.FloatField()
    knowledge_score = serializers.FloatField(help_text="0 when the search did not include knowledge.")


class BrowserMatchSerializer(serializers.Serializer):
    """One result as SnowTrace's smart-matching page reads it (snowbuddyApi.ts `MatchResult`)."""

    user_id = serializers.CharField()
    score = serializers.FloatField()
    breakdown = BrowserBreakdownSerializer()


class SnowTraceSearchSerializer(serializers.Serializer):
    """GET /matching/searches/{id} as the old service answered it (`status`, `results`), plus what
    SnowTrace's smart-matching page reads (`matches`, and `failed` among the states)."""

    status = serializers.SerializerMethodField()
    results = serializers.SerializerMethodField()
    matches = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=SnowTraceStatus.CHOICES))
    def get_status(self, search: Search) -> str:
        return SnowTraceStatus.of(search.status)

    @extend_schema_field(SnowTraceMatchSerializer(many=True))
    def get_results(self, search: Search) -> list[dict]:
        return SnowTraceMatchSerializer(self._answer(search).results, many=True).data

    @extend_schema_field(BrowserMatchSerializer(many=True))
    def get_matches(self, search: Search) -> list[dict]:
        return BrowserMatchSerializer(self._answer(search).matches, many=True).data

    def _answer(self, search: Search):
        cached = getattr(search, "_snowtrace_answer", None)
        if cached is None:
            cached = search._snowtrace_answer = snowtrace_answer(
                search_id=search.pk, attempt=search.attempt, status=search.status
            )
        return cached


class SnowTraceSearchSubmittedSerializer(serializers.Serializer):
    """POST /matching/searches as the old service answered it, plus `warnings` when there are any."""

    search_id = serializers.UUIDField()
    warnings = InputWarningSerializer(many=True, required=False, help_text="Only when there are any.")


class SearchCancelledSerializer(serializers.ModelSerializer):
    class Meta:
        model = Search
        fields = ["search_id", "status", "attempt", "finished_at"]


class ResortSerializer(serializers.ModelSerializer):
    class Meta:
        model = Resort
        fields = ["id", "name", "name_en", "name_ja", "region", "country"]


class ResortListSerializer(serializers.Serializer):
    regions = serializers.ListField(child=serializers.ChoiceField(choices=REGION_CHOICES))
    resorts = ResortSerializer(many=True)


class HostSnapshotSerializer(serializers.Serializer):
    name = serializers.CharField()
    profiles = serializers.IntegerField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True, help_text="Seconds since its data was read.")


class ProcessIndexSerializer(serializers.Serializer):
    profiles = serializers.IntegerField(help_text="Profiles a search can see.")
    snapshot = serializers.CharField(allow_null=True, help_text="The host snapshot its base is mapped from.")
    overlay_profiles = serializers.IntegerField(help_text="Changed profiles held privately beside the base.")
    staleness_seconds = serializers.FloatField(help_text="Seconds since its newest data was read.")
    loaded_at = serializers.DateTimeField()


class IndexHealthSerializer(serializers.Serializer):
    snapshot = HostSnapshotSerializer(allow_null=True, help_text="This host's warm index snapshot (null: none).")
    process = ProcessIndexSerializer(
        allow_null=True, help_text="The answering process's warm index (null: it has not loaded one)."
    )


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[("ok", "ok"), ("unavailable", "unavailable")])
    database = serializers.CharField(help_text='"ok" or "error: <exception type>".')
    broker = serializers.CharField(help_text='"ok" or "error: <exception type>".')
    index = IndexHealthSerializer(help_text="The warm candidate index on this host (informational).")
