"""API errors are JSON with a clear message; never a stack trace."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


def api_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    # Anything else unhandled is re-raised by DRF: Django logs it, fires got_request_exception
    # (the test suite fails on it) and answers with snowbuddy.urls.handler500: JSON, no trace.
    return exception_handler(exc, context)
