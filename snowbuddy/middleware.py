from django.conf import settings
from django.utils.cache import patch_cache_control

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
