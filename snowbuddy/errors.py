"""One JSON error shape for every answer of the console (docs/contracts.md, "Errors").

    {"type": "validation_error" | "client_error" | "server_error",
     "errors": [{"code": "<machine code>", "detail": "<message>", "attr": "<field path>" | null}]}

It is drf-standardized-errors' shape, so DRF views get it from that package's exception handler
(matching/api/errors.py) and everything else (the plain Django views of the webhook and the
candidates feed, Django's own 400/403/404/500 and CSRF failures) builds it here. Only the admin
keeps Django's HTML pages.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views import defaults as django_defaults
from django.views.csrf import csrf_failure as django_csrf_failure

VALIDATION_ERROR = "validation_error"
CLIENT_ERROR = "client_error"
SERVER_ERROR = "server_error"

# Paths whose answers are HTML for people (the admin); everything else speaks JSON.
HTML_PREFIXES = ("/admin/",)


def error_body(code: str, detail: str, *, attr: str | None = None, error_type: str = CLIENT_ERROR) -> dict:
    return {"type": error_type, "errors": [{"code": code, "detail": detail, "attr": attr}]}


def validation_body(errors: list[tuple[str | None, str, str]]) -> dict:
    """Several field errors at once: (attr, code, detail) triples."""
    return {
        "type": VALIDATION_ERROR,
        "errors": [{"code": code, "detail": detail, "attr": attr} for attr, code, detail in errors],
    }


def error_response(status: int, code: str, detail: str, *, attr: str | None = None, headers=None) -> JsonResponse:
    # A 400 about one named field is a validation error, as DRF's serializer errors are.
    error_type = SERVER_ERROR if status >= 500 else VALIDATION_ERROR if status == 400 and attr else CLIENT_ERROR
    return JsonResponse(error_body(code, detail, attr=attr, error_type=error_type), status=status, headers=headers)


def method_not_allowed(request: HttpRequest, allowed: list[str]) -> JsonResponse:
    return error_response(
        405,
        "method_not_allowed",
        f'Method "{request.method}" not allowed.',
        headers={"Allow": ", ".join(allowed)},
    )


def speaks_json(request: HttpRequest) -> bool:
    return not request.path.startswith(HTML_PREFIXES)


# --- Django's error views (snowbuddy/urls.py handler400/403/404/500, CSRF_FAILURE_VIEW) ---------


def bad_request(request, exception=None):
    if speaks_json(request):
        return error_response(400, "bad_request", "Bad request.")
    return django_defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if speaks_json(request):
        return error_response(403, "permission_denied", "You do not have permission to perform this action.")
    return django_defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if speaks_json(request):
        return error_response(404, "not_found", "Not found.")
    return django_defaults.page_not_found(request, exception)


def server_error(request):
    # Never the exception: its text may hold internals. The traceback goes to the log only.
    if speaks_json(request):
        return error_response(500, "server_error", "Internal error.")
    return django_defaults.server_error(request)


def csrf_failure(request, reason=""):
    if speaks_json(request):
        return error_response(403, "csrf_failed", "CSRF verification failed.")
    return django_csrf_failure(request, reason=reason)
