"""Profile push endpoints for SnowTrace's services (trusted-service API keys only).

`PUT /matching/profiles/{user_id}`, `GET` and `DELETE` on the same path,
`POST /matching/profiles/{user_id}:close`, and `POST /matching/profiles:batch` (≤ 1,000).
A body is either the user service's record (it has `preferences` or `self_role`) or the
console's own profile JSON; docs/contracts.md describes both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_standardized_errors.formatter import flatten_errors
from rest_framework import authentication, exceptions, permissions, status
from rest_framework.response import Response
from rest_framework.utils.mediatypes import media_type_matches
from rest_framework.views import APIView

from matching.api.authentication import API_KEY_HEADER, SnowTraceAuthentication
from matching.api.errors import PayloadTooLarge
from matching.api.profile_schemas import describe_batch, describe_close, describe_delete, describe_get, describe_put
from matching.models import ApiClientKey, SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import PROFILE_COLUMNS, profile_close, profile_delete, profiles_upsert_many
from matching.snowtrace.users import profile_from_user_record
from matching.vocabulary.profile_input import USER_ID_RE, ProfileInvalid, ProfileWrite, profile_from_console_shape
from snowbuddy import json_input

BATCH_MAX = 1000


class TrustedService:
    """A SnowTrace service acting for itself (no end user)."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, key: ApiClientKey):
        self.key = key
        self.pk = f"service:{key.name}"


class TrustedServiceAuthentication(authentication.BaseAuthentication):
    """The API key alone; whether it may write profiles is the permission's question."""

    def authenticate(self, request):
        raw_key = request.headers.get(API_KEY_HEADER, "")
        if not raw_key:
            return None
        key = SnowTraceAuthentication._check_key(raw_key)
        return TrustedService(key), key

    def authenticate_header(self, request) -> str:
        return f'ApiKey header="{API_KEY_HEADER}"'


class TrustedServiceKeyScheme(OpenApiAuthenticationExtension):
    target_class = TrustedServiceAuthentication
    name = "TrustedServiceApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": API_KEY_HEADER,
            "description": "An API key marked as a trusted service (admin); no X-User-Id.",
        }


class IsTrustedService(permissions.BasePermission):
    message = "This API key may not write profiles: it is not a trusted-service key."

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiClientKey):
            raise exceptions.NotAuthenticated()
        return key.is_trusted_service


class _ServiceView(APIView):
    authentication_classes = [TrustedServiceAuthentication]
    permission_classes = [IsTrustedService]
    throttle_classes: list = []


REQUIRED = "This field is required."


UNKNOWN = "Unknown field."
CODES = {REQUIRED: "required", UNKNOWN: "unknown_field"}


def _details(errors: dict[str, Any]) -> dict[str, Any]:
    """The domain's field errors as DRF error details (code `required`, `unknown_field` or `invalid`),
    nested as given."""
    return {
        name: _details(messages)
        if isinstance(messages, dict)
        else [exceptions.ErrorDetail(m, code=CODES.get(m, "invalid")) for m in messages]
        for name, messages in errors.items()
    }


def invalid(errors: dict[str, Any]) -> exceptions.ValidationError:
    """A 400 in the project's error shape; nested fields get dotted `attr`s (`preferences.availability`)."""
    return exceptions.ValidationError(_details(errors))


def error_list(errors: dict[str, Any]) -> list[dict[str, Any]]:
    """The same errors as the shape's `errors` list, for a rejected record inside a batch answer."""
    return [asdict(error) for error in flatten_errors(_details(errors))]


def parse_profile(data: Any, *, user_id: str | None = None) -> ProfileWrite:
    """Either shape; raises ProfileInvalid with field errors."""
    mapping = resort_regions()
    if isinstance(data, dict) and ("preferences" in data or "self_role" in data):
        return profile_from_user_record(data, resort_regions=mapping, user_id=user_id)
    return profile_from_console_shape(data, resort_regions=mapping, user_id=user_id)


def profile_view(row: SkierProfile) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        **{name: getattr(row, name) for name in PROFILE_COLUMNS},
        "updated_at": row.updated_at,
    }


def _user_id(user_id: str) -> str:
    if not USER_ID_RE.match(user_id):
        raise invalid({"user_id": ["Must be 1-64 characters of A-Z a-z 0-9 _ . : @ -."]})
    return user_id


class ProfileView(_ServiceView):
    """One profile, written by SnowTrace's services (a trusted-service API key; no X-User-Id)."""

    @describe_get
    def get(self, request, user_id: str):
        row = SkierProfile.objects.filter(user_id=_user_id(user_id), deleted_at__isnull=True).first()
        if row is None:
            raise exceptions.NotFound("No such profile.")
        return Response(profile_view(row))

    @describe_put
    def put(self, request, user_id: str):
        try:
            profile = parse_profile(request.data, user_id=_user_id(user_id))
        except ProfileInvalid as exc:
            raise invalid(exc.errors) from None
        [outcome] = profiles_upsert_many(profiles=[profile])
        row = SkierProfile.objects.get(user_id=profile.user_id)
        return Response(
            {"status": outcome.status, "profile": profile_view(row)},
            status=status.HTTP_201_CREATED if outcome.status == "created" else status.HTTP_200_OK,
        )

    @describe_delete
    def delete(self, request, user_id: str):
        if profile_delete(user_id=_user_id(user_id)) is None:
            raise exceptions.NotFound("No such profile.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProfileCloseView(_ServiceView):
    """`POST /matching/profiles/{user_id}:close`: out of matching, kept (a user id ending in
    `:close` names this action, so such an id cannot be pushed)."""

    @describe_close
    def post(self, request, user_id: str):
        target = _user_id(user_id)
        outcome = profile_close(user_id=target)
        if outcome is None:
            raise exceptions.NotFound("No such profile.")
        return Response({"user_id": target, "status": outcome})


class ProfileBatchView(_ServiceView):
    """Up to 1,000 profiles, each created, updated, left unchanged or rejected on its own
    (a trusted-service API key; no X-User-Id)."""

    @describe_batch
    def post(self, request):
        # Read here, with the batch's own size limit: request.data would apply the API's 64 KB.
        limit = settings.MATCHING_PROFILE_BATCH_MAX_BYTES
        raw = request._request.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body exceeds {limit} bytes.")
        if raw and not media_type_matches("application/json", request.content_type or ""):
            raise exceptions.UnsupportedMediaType(request.content_type)  # as DRF's parsing does elsewhere
        try:
            data = json_input.loads(raw)
        except json_input.JsonInputError as exc:
            raise exceptions.ParseError(exc.detail, code=exc.code) from None
        key = next((k for k in ("profiles", "items") if isinstance(data, dict) and k in data), None)
        records = data.get(key) if key else None
        if not isinstance(records, list):
            raise invalid({"profiles": ['Expected {"profiles": [...]} (or the user service\'s {"items": [...]}).']})
        if len(records) > BATCH_MAX:
            raise invalid({key: [f"At most {BATCH_MAX} profiles per call, got {len(records)}."]})
        results: list[dict[str, Any]] = [{} for _ in records]
        valid: list[tuple[int, ProfileWrite]] = []
        first_seen: dict[str, int] = {}
        for position, record in enumerate(records):
            try:
                profile = parse_profile(record)
            except ProfileInvalid as exc:
                user_id = record.get("user_id") if isinstance(record, dict) else None
                results[position] = {
                    "index": position,
                    "user_id": user_id if isinstance(user_id, str) else None,
                    "status": "rejected",
                    "errors": error_list(exc.errors),
                }
                continue
            if profile.user_id in first_seen:
                message = f"Appears more than once in this batch (first at index {first_seen[profile.user_id]})."
                results[position] = {
                    "index": position,
                    "user_id": profile.user_id,
                    "status": "rejected",
                    "errors": error_list({"user_id": [message]}),
                }
                continue
            first_seen[profile.user_id] = position
            valid.append((position, profile))
        outcomes = profiles_upsert_many(profiles=[profile for _, profile in valid])
        for (position, profile), outcome in zip(valid, outcomes, strict=True):
            results[position] = {"index": position, "user_id": profile.user_id, "status": outcome.status}
        tally = Counter(result["status"] for result in results)
        counts = {name: tally.get(name, 0) for name in ("created", "updated", "unchanged", "rejected")}
        return Response({"counts": counts, "results": results})
