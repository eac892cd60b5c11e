from __future__ import annotations

import uuid

import django_filters
from django.db import connection
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from matching.api.serializers import (
    SearchDetailSerializer,
    SearchPreferencesSerializer,
    SearchSubmittedSerializer,
    SearchSummarySerializer,
)
from matching.api.throttling import SearchSubmitKeyThrottle, SearchSubmitThrottle
from matching.models import Search, SearchStatus
from workflows.mirror import mirror_refresh_if_stale
from workflows.services import search_submit

USER_PARAMETER = OpenApiParameter(
    "X-User-Id", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True, description="The acting SnowTrace user."
)


class SearchFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=SearchStatus.choices)

    class Meta:
        model = Search
        fields = ["status"]


@extend_schema(parameters=[USER_PARAMETER])
class SearchViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Searches of the acting user. Another user's search answers 404, never 403."""

    lookup_field = "search_id"
    lookup_value_regex = "[^/]+"
    filterset_class = SearchFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Search.objects.none()
        qs = Search.objects.filter(seeker_id=self.request.user.user_id).order_by("-created_at")
        if self.action == "list":
            qs = qs.defer("preferences")
        return qs

    def get_object(self):
        try:
            uuid.UUID(str(self.kwargs["search_id"]))
        except ValueError:
            raise Http404 from None
        return super().get_object()

    def get_serializer_class(self):
        if self.action == "create":
            return SearchPreferencesSerializer
        if self.action == "retrieve":
            return SearchDetailSerializer
        return SearchSummarySerializer

    def get_throttles(self):
        return [SearchSubmitKeyThrottle(), SearchSubmitThrottle()] if self.action == "create" else []

    def retrieve(self, request, *args, **kwargs):
        search = self.get_object()
        # Durable searches answer from the console's mirror, refreshed first if it is stale.
        mirror_refresh_if_stale(search=search)
        return Response(SearchDetailSerializer(search).data)

    @extend_schema(request=SearchPreferencesSerializer, responses={202: SearchSubmittedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = SearchPreferencesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        search = search_submit(
            seeker_id=request.user.user_id,
            preferences=serializer.validated_data,
            acting_user=f"user:{request.user.user_id}",
            api_key=request.auth,
        )
        return Response(SearchSubmittedSerializer(search).data, status=status.HTTP_202_ACCEPTED)


class HealthView(APIView):
    """Database and broker reachability, for load balancers and humans."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
    def get(self, request):
        checks = {"database": _check_database(), "broker": _check_broker()}
        healthy = all(value == "ok" for value in checks.values())
        return Response(
            {"status": "ok" if healthy else "unavailable", **checks},
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
