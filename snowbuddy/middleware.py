import re
import time
import uuid

from django.conf import settings
from django.utils.cache import patch_cache_control

from matching import metrics
from snowbuddy import logs
from snowbuddy.errors import error_response

BIG_BODY_PATHS = frozenset({"/matching/profiles:batch"})


class RequestBodyLimitMiddleware:
    """Answer 413 before reading a body that declares more than API_MAX_BODY_BYTES, and 411 for a
    body sent chunked (POST, PUT and PATCH: the only requests whose body the console reads).

    Django alone turns an oversized body into a 400; clients deserve the precise status. A chunked
    body reaches Django with no CONTENT_LENGTH, which Django reads as an empty body (gunicorn
    de-chunks, but Django trusts only the length): the request would be answered as if nothing had
    been sent. So a body must declare its length.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    # Only these methods' bodies are read; a body on any other request is ignored, unread.
    BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

    def __call__(self, request):
        if request.method not in self.BODY_METHODS:
            return self.get_response(request)
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        if not raw_length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return error_response(411, "length_required", "A request body needs a Content-Length header.")
        try:
            declared = int(raw_length or 0)
        except ValueError:
            return error_response(400, "invalid_content_length", "Invalid Content-Length header.")
        if declared < 0:
            return error_response(400, "invalid_content_length", "Invalid Content-Length header.")
        # A profile batch (up to 1,000 profiles) has its own, larger limit.
        limit = (
            settings.MATCHING_PROFILE_BATCH_MAX_BYTES if request.path in BIG_BODY_PATHS else settings.API_MAX_BODY_BYTES
        )
        if declared > limit and not request.path.startswith("/admin/"):
            return error_response(413, "payload_too_large", f"Request body exceeds {limit} bytes.")
        return self.get_response(request)


class NoStoreMiddleware:
    """`Cache-Control: no-store` on every answer that does not set its own: search results and
    errors are per user and must not sit in a shared or browser cache. (Static files are served
    by WhiteNoise above this middleware and keep their long cache headers.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            patch_cache_control(response, no_store=True)
        return response


# A client's own request id is kept when it looks like one (a UUID, a ULID, a trace-ish token).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class ObservabilityMiddleware:
    """The outermost middleware: gives each request an id (the client's `X-Request-ID` when it is
    sane, else a new one), binds it to every log line of the request and answers it back, and
    counts the request by route pattern, method and status with its latency.

    The route is Django's pattern (`matching/searches/<uuid:search_id>`), never the raw path, so
    ids do not become label values; a request no route matched is `<unmatched>`.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        began = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = logs.bind(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            logs.unbind(token)
        response.headers["X-Request-ID"] = request_id
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name or "<unnamed>") if match else "<unmatched>"
        method = request.method if request.method in _METHODS else "other"
        metrics.HTTP_REQUESTS.labels(route=route, method=method, status=str(response.status_code)).inc()
        metrics.HTTP_DURATION.labels(route=route, method=method).observe(time.perf_counter() - began)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        # A search's own URLs (its page, its webhook, its feed) put its id on every line they log;
        # __call__'s unbind restores the context from before the request, this binding included.
        search_id = view_kwargs.get("search_id")
        if not search_id and request.path.startswith("/admin/matching/search/"):
            search_id = view_kwargs.get("object_id")
        if search_id:
            logs.bind(search_id=str(search_id)[:64])


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
