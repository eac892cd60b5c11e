from django.conf import settings
from django.http import JsonResponse


class RequestBodyLimitMiddleware:
    """Answer 413 before reading a body that declares more than API_MAX_BODY_BYTES.

    Django alone turns an oversized body into a 400; clients deserve the precise status.
    Bodies without a Content-Length are caught later by the API's exception handler.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
        if declared > settings.API_MAX_BODY_BYTES and not request.path.startswith("/admin/"):
            return JsonResponse({"detail": f"Request body exceeds {settings.API_MAX_BODY_BYTES} bytes."}, status=413)
        return self.get_response(request)
