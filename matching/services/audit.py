"""The staff audit: one `StaffAction` row per staff action, and its log line."""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction

from matching.models import (
    Search,
    StaffAction,
)


def staff_action_record(
    *,
    user,
    action: str,
    reason: str,
    outcome: str,
    search: Search | None = None,
    attempt: int | None = None,
    status_before: str = "",
    status_after: str = "",
    parameters: dict | None = None,
    detail: str = "",
    detail_code: dict | None = None,
) -> StaffAction:
    """One line of the staff audit trail: who, when, what, why, the status before and after."""
    action_row = StaffAction.objects.create(
        user=user if getattr(user, "pk", None) else None,
        username=getattr(user, "username", "") or str(user),
        action=action,
        search=search,
        attempt=attempt if attempt is not None else (search.attempt if search is not None else None),
        reason=reason[:2000],
        parameters=parameters or {},
        status_before=status_before,
        status_after=status_after,
        outcome=outcome,
        detail=detail[:2000],
        detail_code=detail_code or {},
    )
    transaction.on_commit(partial(_log_staff_action, action_row))
    return action_row


def _log_staff_action(row: StaffAction) -> None:
    logging.getLogger("matching.staff").info(
        "staff %s: %s %s → %s",
        row.username,
        row.action,
        row.search_id or "",
        row.outcome,
        extra={
            "search_id": str(row.search_id) if row.search_id else "",
            "attempt": row.attempt,
            "staff_user": row.username,
            "action": row.action,
            "outcome": row.outcome,
            "status_before": row.status_before,
            "status_after": row.status_after,
            "reason": row.reason[:300],
        },
    )
