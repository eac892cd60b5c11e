from rest_framework.throttling import SimpleRateThrottle


class SearchSubmitThrottle(SimpleRateThrottle):
    """Per acting user (X-User-Id), like the old service's 15 searches a minute."""

    scope = "search_submit"

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        if not getattr(user, "is_authenticated", False):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}


class SearchSubmitKeyThrottle(SimpleRateThrottle):
    """Per API key, whatever user it names (MATCHING_KEY_RATE): a key holder rotating X-User-Id
    meets this limit."""

    scope = "search_submit_key"

    def get_cache_key(self, request, view):
        key = getattr(request, "auth", None)
        if key is None or getattr(key, "pk", None) is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": key.pk}


class MatchRequestSendThrottle(SearchSubmitThrottle):
    """Per acting user: match requests sent (MATCHING_REQUEST_RATE)."""

    scope = "match_request_send"
