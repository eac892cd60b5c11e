from __future__ import annotations

from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination

MAX_PAGE = 2**31 - 1


class StrictPageNumberPagination(PageNumberPagination):
    """`?page=` is a whole number from 1 (ASCII digits only). DRF reads an empty `?page=` as page 1
    and Python's int() takes "+1", " 1" and "1_0"; here any of those is a 400 naming `page`. A page
    past the last one stays DRF's 404."""

    validation_error_codes = {"page": {"invalid"}}  # for the schema (snowbuddy/openapi.py)
    default_error_messages = {"invalid_page": f"Must be a whole number from 1 to {MAX_PAGE}, written in digits."}

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not 1 <= int(raw) <= MAX_PAGE:
            message = self.default_error_messages["invalid_page"]
            raise serializers.ValidationError({self.page_query_param: [serializers.ErrorDetail(message, "invalid")]})
        return raw

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "A page number (from 1; a page past the last one is a 404).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            }
        ]

    def get_paginated_response_schema(self, schema):
        link = {"type": ["string", "null"], "format": "uri"}
        return {
            "type": "object",
            "required": ["count", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "next": {**link, "description": "The next page, or null on the last one."},
                "previous": {**link, "description": "The previous page, or null on the first one."},
                "results": schema,
            },
        }
