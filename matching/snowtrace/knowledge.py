"""SnowTrace's knowledge service: a user's overall knowledge score.

Wire format: `GET {KNOWLEDGE_ENGAGEMENT_API_URL}/users/{user_id}/skill-profile` →
`{"overall_score": 0..100, ...}`; 404 means the user has none. The console stores whole
scores: a fractional score is rounded to the nearest integer.
"""

from __future__ import annotations

from collections.abc import Mapping

from .http import MalformedResponse, ServiceClient, ServiceConfig, path_segment


class KnowledgeServiceClient:
    def __init__(self, http: ServiceClient):
        self.http = http

    @classmethod
    def from_settings(cls, *, concurrency: int = 10) -> KnowledgeServiceClient:
        config = ServiceConfig.from_settings(
            "knowledge service",
            url_setting="KNOWLEDGE_ENGAGEMENT_API_URL",
            auth_setting="KNOWLEDGE_ENGAGEMENT_API_TOKEN",
            pool_size=concurrency,
        )
        return cls(ServiceClient(config))

    def overall_score(self, user_id: str) -> int | None:
        """The user's score, or None when the service has none (404, or a null score)."""
        body = self.http.get_json(f"/users/{path_segment(user_id)}/skill-profile", none_on_404=True)
        if body is None:
            return None
        if not isinstance(body, Mapping):
            raise MalformedResponse("knowledge service: skill-profile is not a JSON object")
        score = body.get("overall_score")
        if score is None:
            return None
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 100:
            raise MalformedResponse(f"knowledge service: overall_score {score!r} is not a number in 0..100")
        return round(score)

    def close(self) -> None:
        self.http.close()
