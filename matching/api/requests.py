"""Match requests (`/requests`, at the site root where SnowTrace's old service had them), and the
old service's trip calls, which moved to SnowTrace's user service (docs/contracts.md, "Match requests").

A request is a row: the requester asks the target; the target accepts or declines it, or the
requester withdraws it, once. Only the two parties see it; to anyone else it does not exist (404).
"""

from __future__ import annotations

import django_filters
from django.core.validators import RegexValidator
from django.db.models import Q
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from matching.api.authentication import USER_ID_RE
from matching.api.fields import StrictStringField
from matching.api.throttling import MatchRequestSendThrottle
from matching.models import MatchRequest, MatchRequestStatus
from matching.services.match_requests import (
    MATCH_REQUEST_ACTIONS,
    MatchRequestConflict,
    MatchRequestForbidden,
    match_request_answer,
    match_request_send,
)
from matching.vocabulary.ids import parse_uuid
from snowbuddy.openapi import ForbiddenResponse, NotFoundResponse, error_response
from workflows.outbound.user_events import user_events_kick

SELF_REQUEST = "self_request"
EXAMPLE_REQUEST_ID = "3f2b8c1e-6a4d-4e8f-9c2a-7b5d1e0f4a36"
REQUEST_ID_PARAMETER = OpenApiParameter(
    "request_id",
    {"type": "string"},
    OpenApiParameter.PATH,
    description="A match request's id (a UUID; anything else is a 404).",
    examples=[OpenApiExample("a request", value=EXAMPLE_REQUEST_ID)],
)
ANSWERED = {
    MatchRequestStatus.ACCEPTED: "request accepted",
    MatchRequestStatus.DECLINED: "request declined",
    MatchRequestStatus.WITHDRAWN: "request withdrawn",
}


class MatchRequestSendSerializer(serializers.Serializer):
    """The old service's body. As there (pydantic), other fields are ignored."""

    schema_open = True  # the schema says so (snowbuddy/openapi.py)

    target_user_id = StrictStringField(
        max_length=64,
        validators=[RegexValidator(USER_ID_RE, message="Must be a user id: 1-64 of A-Z a-z 0-9 _ . : @ -.")],
        help_text="Whom to ask: a user id as SnowTrace names users (1-64 of `A-Z a-z 0-9 _ . : @ -`).",
    )

    def validate_target_user_id(self, value: str) -> str:
        # A user token names its user by the canonical (lower-case) UUID: so must the target.
        uuid = parse_uuid(value)
        value = str(uuid) if uuid is not None else value
        if value == self.context["requester_id"]:
            raise serializers.ValidationError("You cannot send a match request to yourself.", code=SELF_REQUEST)
        return value


class MatchRequestSentSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[("request sent", "request sent")])
    request_id = serializers.UUIDField(help_text="The new request, or the one already pending to this person.")


class MatchRequestAnswerSerializer(serializers.Serializer):
    schema_open = True  # other fields are ignored, as the old service's pydantic body did
    action = serializers.ChoiceField(
        choices=list(MATCH_REQUEST_ACTIONS),
        help_text="`accept` or `decline` (the target), `withdraw` (the requester).",
    )


class MatchRequestAnsweredSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[(v, v) for v in ANSWERED.values()])


class MatchRequestSerializer(serializers.ModelSerializer):
    """The fields of SnowTrace's `MatchRequest` (snowbuddyApi.ts), and when it was answered."""

    class Meta:
        model = MatchRequest
        fields = ["request_id", "requester_id", "target_user_id", "status", "created_at", "answered_at"]


AlreadyAnsweredResponse = error_response(
    "MatchRequestErrorResponse409",
    ["already_answered"],
    description="The request was already accepted, declined or withdrawn; the detail names which.",
)


class MatchRequestAlreadyAnswered(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "already_answered"


class MatchRequestFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(
        choices=[("sent", "sent"), ("received", "received")],
        method="filter_role",
        label="`sent`: requests the acting user sent; `received`: sent to them. Both when absent.",
    )
    status = django_filters.MultipleChoiceFilter(choices=MatchRequestStatus.choices)

    class Meta:
        model = MatchRequest
        fields = ["role", "status"]

    def filter_role(self, queryset, name, value):
        user_id = self.request.user.user_id
        return queryset.filter(requester_id=user_id) if value == "sent" else queryset.filter(target_user_id=user_id)


@extend_validation_errors([SELF_REQUEST], field_name="target_user_id", actions=["create"])
class MatchRequestViewSet(
    mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """The acting user's match requests, sent or received."""

    lookup_field = "request_id"
    lookup_value_regex = "[^/]+"
    filterset_class = MatchRequestFilter
    serializer_class = MatchRequestSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return MatchRequest.objects.none()
        user_id = self.request.user.user_id
        return MatchRequest.objects.filter(Q(requester_id=user_id) | Q(target_user_id=user_id)).order_by(
            "-created_at", "request_id"
        )

    def get_object(self):
        if parse_uuid(self.kwargs["request_id"]) is None:
            raise Http404
        return super().get_object()

    def get_serializer_class(self):
        return {"create": MatchRequestSentSerializer, "update": MatchRequestAnsweredSerializer}.get(
            self.action, MatchRequestSerializer
        )

    def get_throttles(self):
        return [MatchRequestSendThrottle()] if self.action == "create" else []

    def check_throttles(self, request):
        """Throttles run in create(), after the body is valid: a refused body costs no send."""

    @extend_schema(
        request=MatchRequestSendSerializer,
        responses={202: MatchRequestSentSerializer},
        examples=[OpenApiExample("Send", value={"target_user_id": "user-123"}, request_only=True)],
    )
    def create(self, request, *args, **kwargs):
        """Ask another user to ski together. A request already pending to the same person answers
        with that request; no second one is made."""
        body = MatchRequestSendSerializer(data=request.data, context={"requester_id": request.user.user_id})
        body.is_valid(raise_exception=True)
        super().check_throttles(request)
        match_request, created = match_request_send(
            requester_id=request.user.user_id, target_user_id=body.validated_data["target_user_id"]
        )
        if created:
            user_events_kick(match_request_id=match_request.pk)
        return Response(
            {"status": "request sent", "request_id": str(match_request.pk)}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(parameters=[REQUEST_ID_PARAMETER])
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        parameters=[REQUEST_ID_PARAMETER],
        request=MatchRequestAnswerSerializer,
        responses={
            200: MatchRequestAnsweredSerializer,
            403: OpenApiResponse(ForbiddenResponse, description="Only the other party may take this action."),
            409: OpenApiResponse(AlreadyAnsweredResponse, description="The request was already answered."),
        },
        examples=[OpenApiExample("Accept", value={"action": "accept"}, request_only=True)],
    )
    def update(self, request, *args, **kwargs):
        """Accept or decline a request sent to you, or withdraw one you sent: once, while it is
        pending. The other party's action is a 403; a second answer is a 409."""
        match_request = self.get_object()
        body = MatchRequestAnswerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            match_request = match_request_answer(
                match_request=match_request, acting_user_id=request.user.user_id, action=body.validated_data["action"]
            )
        except MatchRequestForbidden as exc:
            raise PermissionDenied(str(exc)) from None
        except MatchRequestConflict as exc:
            raise MatchRequestAlreadyAnswered(str(exc)) from None
        user_events_kick(match_request_id=match_request.pk)
        return Response({"status": ANSWERED[match_request.status]})


TRIPS_MOVED = (
    "Trips are not the matching console's: SnowTrace's user service serves them under "
    "/trip-planning/trips/{trip_id}/... (apply, applications/{request_id}, participants/{user_id}, buddies)."
)


class TripsMovedView(APIView):
    """The old service's `/trips/...` calls: a 404 (in the one error shape) saying where they went."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []  # the body is never read
    moved_to = ""

    def moved(self, request, *args, **kwargs):
        raise NotFound(f"{TRIPS_MOVED} This call is now {self.moved_to}.")


def _moved(method: str, new: str) -> type[TripsMovedView]:
    moved_to = f"{method.upper()} /trip-planning{new}"
    attrs = {"moved_to": moved_to, method: TripsMovedView.moved}
    view = type(f"Trips{method.title()}MovedView", (TripsMovedView,), attrs)
    return extend_schema(
        methods=[method.upper()],
        deprecated=True,
        request=None,
        responses={404: OpenApiResponse(NotFoundResponse, description=f"Always: now the user service's {moved_to}.")},
        description=f"The old matching service's call; SnowTrace's user service now serves it as "
        f"`{moved_to}`. Always a 404 whose detail says so.",
        tags=["trips (moved)"],
    )(view)


TripApplyMovedView = _moved("post", "/trips/{trip_id}/apply")
TripApplicationMovedView = _moved("put", "/trips/{trip_id}/applications/{request_id}")
TripParticipantMovedView = _moved("delete", "/trips/{trip_id}/participants/{user_id}")
# The user service lists a trip's people as its buddies.
TripParticipantsMovedView = _moved("get", "/trips/{trip_id}/buddies")
