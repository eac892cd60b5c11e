"""Match requests between users, and the behaviour events they send to SnowTrace's user service."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from matching.models import (
    MatchRequest,
    MatchRequestStatus,
    UserEvent,
    UserEventType,
)

USER_EVENT_SOURCE = "snowbuddy-matching"  # the old service's source_project


class MatchRequestConflict(Exception):
    """The request was already answered or withdrawn: each request takes one answer."""

    def __init__(self, match_request: MatchRequest):
        super().__init__(f"The request was already {match_request.status}.")
        self.match_request = match_request


class MatchRequestForbidden(Exception):
    """A party asked for what only the other party may do (the requester accepting, say)."""


# What each action needs: who may take it, and the status it leads to.
MATCH_REQUEST_ACTIONS = {
    "accept": ("target", MatchRequestStatus.ACCEPTED, UserEventType.REQUEST_ACCEPTED),
    "decline": ("target", MatchRequestStatus.DECLINED, UserEventType.REQUEST_DECLINED),
    "withdraw": ("requester", MatchRequestStatus.WITHDRAWN, None),
}


def _user_event(*, match_request: MatchRequest, event_type: str, user_id: str, payload: dict, at: datetime):
    """Write a behaviour event into the outbox (in the caller's transaction), in the old service's
    form. Nothing is written when no user service is configured: nobody would receive it."""
    if not settings.USER_CORE_API_URL:
        return None
    body = {
        "user_id": user_id,
        "source_project": USER_EVENT_SOURCE,
        "event_type": event_type,
        "occurred_at": at.isoformat(),
        "payload": payload,
    }
    return UserEvent.objects.create(match_request=match_request, event_type=event_type, body=body, next_attempt_at=at)


def match_request_send(*, requester_id: str, target_user_id: str) -> tuple[MatchRequest, bool]:
    """Ask `target_user_id` to ski together. A request already pending between the two (in this
    direction) is returned as it is, with False: the old client retried sends freely."""
    if requester_id == target_user_id:
        raise ValueError("a user cannot send a match request to themselves")
    with transaction.atomic(durable=True):
        existing = MatchRequest.objects.filter(
            requester_id=requester_id, target_user_id=target_user_id, status=MatchRequestStatus.PENDING
        ).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                match_request = MatchRequest.objects.create(requester_id=requester_id, target_user_id=target_user_id)
        except IntegrityError:
            # A concurrent send won the unique pending row: answer with that one.
            return MatchRequest.objects.get(
                requester_id=requester_id, target_user_id=target_user_id, status=MatchRequestStatus.PENDING
            ), False
        _user_event(
            match_request=match_request,
            event_type=UserEventType.REQUEST_SENT,
            user_id=requester_id,
            payload={"request_id": str(match_request.pk), "target_user_id": target_user_id},
            at=match_request.created_at,
        )
    return match_request, True


def match_request_answer(*, match_request: MatchRequest, acting_user_id: str, action: str) -> MatchRequest:
    """Accept or decline (the target), or withdraw (the requester), a pending request, once.
    MatchRequestForbidden when the other party must act; MatchRequestConflict when it is no
    longer pending (the first of two racing answers wins)."""
    party, to, event_type = MATCH_REQUEST_ACTIONS[action]
    allowed = match_request.target_user_id if party == "target" else match_request.requester_id
    if acting_user_id != allowed:
        raise MatchRequestForbidden(
            f"Only the person {'asked' if party == 'target' else 'who sent the request'} may {action} it."
        )
    now = timezone.now()
    with transaction.atomic(durable=True):
        changed = MatchRequest.objects.filter(pk=match_request.pk, status=MatchRequestStatus.PENDING).update(
            status=to, answered_at=now
        )
        match_request.refresh_from_db()
        if not changed:
            raise MatchRequestConflict(match_request)
        if event_type is not None:
            _user_event(
                match_request=match_request,
                event_type=event_type,
                user_id=acting_user_id,
                payload={"request_id": str(match_request.pk)},
                at=now,
            )
    return match_request
