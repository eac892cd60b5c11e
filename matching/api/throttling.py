from rest_framework.throttling import SimpleRateThrottle


class SearchSubmitThrottle(SimpleRateThrottle):
    """Per acting user (X-User-Id), like the old service's 15 searches a minute."""

    scope = "search_submit"

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        if not getattr(user, "is_authenticated", False):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}
