"""DRF errors in the project's one shape (snowbuddy/errors.py), from drf-standardized-errors."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from drf_standardized_errors.handler import ExceptionHandler
from rest_framework import exceptions, status


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class ApiExceptionHandler(ExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, RequestDataTooBig):
            return PayloadTooLarge()
        return super().convert_known_exceptions(exc)

    def convert_unhandled_exceptions(self, exc: Exception) -> exceptions.APIException:
        # The package logs the exception and fires got_request_exception (the test suite fails
        # on it); the client gets the same body as snowbuddy.errors.server_error, no internals.
        if not isinstance(exc, exceptions.APIException):
            return exceptions.APIException(detail="Internal error.", code="server_error")
        return exc
