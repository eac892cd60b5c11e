from __future__ import annotations

import hashlib
import json
import re

import django_filters
from django.db import connection
from django.http import Http404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.versioning import AcceptHeaderVersioning
from rest_framework.views import APIView

from matching.api.answers import (
    HealthSerializer,
    ResortListSerializer,
    ResortSerializer,
    SearchCancelledSerializer,
    SearchDetailSerializer,
    SearchSubmittedSerializer,
    SearchSummarySerializer,
    SnowTraceSearchSerializer,
    SnowTraceSearchSubmittedSerializer,
)
from matching.api.search_input import (
    CONFLICTING_FIELDS,
    MIXED_SHAPE_ATTRS,
    MIXED_SHAPES,
    SearchCancelSerializer,
    SearchPreferencesSerializer,
    SnowTraceSearchPreferencesSerializer,
    search_preferences_serializer,
)
from matching.api.throttling import SearchSubmitKeyThrottle, SearchSubmitThrottle
from matching.models import Resort, Search, SearchStatus
from matching.services.idempotency import IdempotencyKeyReused
from matching.vocabulary.ids import parse_uuid
from matching.vocabulary.regions import KNOWN_REGIONS
from snowbuddy.openapi import error_response
from workflows.dispatch.submit import search_cancel, search_submit
from workflows.mirror.refresh import mirror_refresh_if_stale
from workflows.tracing import statements_counted

SEARCH_BODY = PolymorphicProxySerializer(
    component_name="SearchCreateBody",
    serializers=[SnowTraceSearchPreferencesSerializer, SearchPreferencesSerializer],
    resource_type_field_name=None,
)
SEARCH_EXAMPLES = [
    OpenApiExample(
        "SnowTraceShape",
        summary="SnowTrace's original body",
        value={
            "skill_level_min": 3,
            "skill_level_max": 7,
            "preferred_resorts": ["yuzawa_naeba"],
            "preferred_regions": ["Niigata Prefecture"],
            "availability": ["2027-01-15", "2027-01-16"],
            "seeking_role": "buddy",
            "include_knowledge_score": True,
        },
        request_only=True,
    ),
    OpenApiExample(
        "ConsoleShape",
        summary="The console's body (a vetted coach search)",
        value={
            "role": "coach",
            "skill_level_min": 5,
            "skill_level_max": 10,
            "resorts": ["hakuba_happo_one"],
            "dates": ["2027-02-01"],
            "required_certifications": ["CASI-3"],
            "vetting_required": True,
            "limit": 10,
        },
        request_only=True,
    ),
]
EMPTY_BODY = "empty_body"
AlreadyFinishedResponse = error_response(
    "ErrorResponse409",
    ["already_finished"],
    description="The search already succeeded, failed or timed out; the detail names the status.",
)


class SearchAlreadyFinished(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "already_finished"


class SearchApiVersioning(AcceptHeaderVersioning):
    """`Accept: application/json; version=2` asks for the console's answers; no version (or 1) gets
    the answers SnowTrace's original client reads (docs/contracts.md, "Answers")."""

    default_version = "1"
    allowed_versions = ("1", "2")


_IDEMPOTENCY_PATTERN = r'^"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,255}"$|^[\x21\x23-\x5b\x5d-\x7e]{1,255}$'
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "pattern": _IDEMPOTENCY_PATTERN, "maxLength": 257},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Optional (IETF httpapi Idempotency-Key). The same key, user and body within 24 h answers with the "
        "search the first request created; the same key with another body is a 422. 1-255 printable ASCII "
        'characters, optionally as a quoted string ("…").'
    ),
)
# A Structured Field string ("…", as the draft writes it) or the bare token most clients send.
_IDEMPOTENCY_KEY = re.compile(
    r'^"(?P<quoted>[\x20-\x21\x23-\x5b\x5d-\x7e]{1,255})"$|^(?P<bare>[\x21\x23-\x5b\x5d-\x7e]{1,255})$'
)
IdempotencyKeyReusedResponse = error_response(
    "ErrorResponse422",
    ["idempotency_key_reused"],
    description="This Idempotency-Key was already used by this user with another body.",
)


class IdempotencyKeyMismatch(APIException):
    status_code = 422
    default_detail = "This Idempotency-Key was already used with a different request body."
    default_code = "idempotency_key_reused"


def idempotency_key(request) -> str:
    """The request's Idempotency-Key ("" when absent); a malformed one is a 400."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return ""
    match = _IDEMPOTENCY_KEY.match(raw.strip())
    if not match:
        raise ValidationError(
            {"Idempotency-Key": ["Must be 1-255 printable ASCII characters, or a quoted string of them."]}
        )
    return match["quoted"] or match["bare"]


def request_fingerprint(data) -> str:
    """SHA-256 of the body as JSON with sorted keys: the same request, whatever its formatting."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class SearchFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=SearchStatus.choices)

    class Meta:
        model = Search
        fields = ["status"]


def _mixed_shape_errors(viewset):
    """The 400 of a body mixing the two shapes names each doubled field (docs/contracts.md)."""
    for name in MIXED_SHAPE_ATTRS:
        codes = [MIXED_SHAPES, EMPTY_BODY, "invalid", "null"] if name == "non_field_errors" else [MIXED_SHAPES]
        viewset = extend_validation_errors(codes, field_name=name, actions=["create"])(viewset)
    # SnowTrace's browser fields disagreeing with their old twins, and more dates than a search holds.
    for name in ("skill_level_range", "skill_level_min", "skill_level_max", "preferred_role", "seeking_role"):
        viewset = extend_validation_errors([CONFLICTING_FIELDS], field_name=name, actions=["create"])(viewset)
    viewset = extend_validation_errors(["max_length"], field_name="date_range", actions=["create"])(viewset)
    # A malformed Idempotency-Key header is a 400 naming the header.
    return extend_validation_errors(["invalid"], field_name="Idempotency-Key", actions=["create"])(viewset)


@_mixed_shape_errors
class SearchViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Searches of the acting user. Another user's search answers 404, never 403."""

    lookup_field = "search_id"
    optional_body_actions = ("cancel",)  # for the schema: a cancel may come without a body
    lookup_value_regex = "[^/]+"
    filterset_class = SearchFilter
    versioning_class = SearchApiVersioning
    detail_serializers = {"1": SnowTraceSearchSerializer, "2": SearchDetailSerializer}
    submitted_serializers = {"1": SnowTraceSearchSubmittedSerializer, "2": SearchSubmittedSerializer}

    def dispatch(self, request, *args, **kwargs):
        # The submit and the polls are the API's hot path (SnowTrace's browser polls each open search
        # once a second): with tracing on, their SQL is counted on the request's span
        # (db.statement_count) instead of a span per statement (docs/observability.md, "Traces").
        with statements_counted(connection):
            return super().dispatch(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Search.objects.none()
        qs = Search.objects.filter(seeker_id=self.request.user.user_id).order_by("-created_at")
        if self.action == "list":
            qs = qs.defer("preferences")
        return qs

    def get_object(self):
        if parse_uuid(self.kwargs["search_id"]) is None:
            raise Http404
        return super().get_object()

    def get_serializer_class(self):
        if self.action == "create":
            return self.submitted_serializers[self.request.version]
        if self.action == "retrieve":
            return self.detail_serializers[self.request.version]
        if self.action == "cancel":
            return SearchCancelledSerializer
        return SearchSummarySerializer

    def get_throttles(self):
        return [SearchSubmitKeyThrottle(), SearchSubmitThrottle()] if self.action == "create" else []

    def check_throttles(self, request):
        """A submit is counted once its body is valid (create() calls the throttles then): a refused
        body does not use up the user's or the key's limit, as the old service validated first."""
        if self.action != "create":
            super().check_throttles(request)

    def retrieve(self, request, *args, **kwargs):
        search = self.get_object()
        # Durable searches answer from the console's mirror, refreshed first if it is stale.
        mirror_refresh_if_stale(search=search)
        return Response(self.get_serializer(search).data)

    @extend_schema(
        request=SEARCH_BODY,
        responses={202: SnowTraceSearchSubmittedSerializer, 422: IdempotencyKeyReusedResponse},
        versions=["1"],
        examples=SEARCH_EXAMPLES,
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @extend_schema(
        request=SEARCH_BODY,
        responses={202: SearchSubmittedSerializer, 422: IdempotencyKeyReusedResponse},
        versions=["2"],
        examples=SEARCH_EXAMPLES,
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    def create(self, request, *args, **kwargs):
        key = idempotency_key(request)
        if not request.body:
            raise ValidationError(
                {"non_field_errors": ["A JSON object is required; {} searches with every default."]}, code=EMPTY_BODY
            )
        serializer = search_preferences_serializer(request.data, seeker_id=request.user.user_id)
        serializer.is_valid(raise_exception=True)
        super().check_throttles(request)
        warnings = getattr(serializer, "warnings", [])
        try:
            search = search_submit(
                seeker_id=request.user.user_id,
                preferences=serializer.validated_data,
                acting_user=f"user:{request.user.user_id}",
                api_key=request.auth,
                idempotency_key=key,
                request_fingerprint=request_fingerprint(request.data) if key else "",
                input_warnings=warnings,
            )
        except IdempotencyKeyReused:
            raise IdempotencyKeyMismatch() from None
        if warnings:
            search.warnings = warnings  # additive: a client reading only `search_id` is unaffected
        headers = {"Idempotent-Replayed": "true"} if getattr(search, "replayed", False) else {}
        return Response(self.get_serializer(search).data, status=status.HTTP_202_ACCEPTED, headers=headers)

    @extend_schema(
        request=SearchCancelSerializer,
        responses={
            202: SearchCancelledSerializer,
            409: OpenApiResponse(AlreadyFinishedResponse, description="The search already finished."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, *args, **kwargs):
        """Cancel the acting user's search. Cancelling a cancelled search answers 202 again."""
        search = self.get_object()
        body = SearchCancelSerializer(data=request.data if request.body else {})
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"] or "cancelled by the user"
        search_cancel(search=search, reason=reason, acting_user=f"user:{request.user.user_id}")
        search.refresh_from_db()
        if search.status != SearchStatus.CANCELLED:
            raise SearchAlreadyFinished(f"The search already {search.status}; it can no longer be cancelled.")
        return Response(SearchCancelledSerializer(search).data, status=status.HTTP_202_ACCEPTED)


class ResortListView(APIView):
    """The resort ids and region names searches accept, so clients need not guess spellings."""

    @extend_schema(responses={200: ResortListSerializer})
    def get(self, request):
        resorts = Resort.objects.order_by("region", "id")
        present = set(resorts.values_list("region", flat=True))
        return Response(
            {
                "regions": [r for r in KNOWN_REGIONS if r in present],
                "resorts": ResortSerializer(resorts, many=True).data,
            }
        )


class HealthView(APIView):
    """Database and broker reachability, for load balancers and humans."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: HealthSerializer,
            503: OpenApiResponse(HealthSerializer, description="The database or the broker is unreachable."),
        }
    )
    def get(self, request):
        checks = {"database": _check_database(), "broker": _check_broker()}
        healthy = all(value == "ok" for value in checks.values())
        from matching.candidates.warm_index import index_health  # numpy loads only when a probe asks

        index = HealthSerializer().fields["index"].to_representation(index_health())
        return Response(
            {"status": "ok" if healthy else "unavailable", **checks, "index": index},
            status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure means unhealthy; the type is enough to report
        return f"error: {type(exc).__name__}"


def _check_broker() -> str:
    from snowbuddy.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
