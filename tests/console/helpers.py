"""Speaking to the console's actions as a staff member's browser does."""

from __future__ import annotations

from django.contrib.messages import get_messages
from django.urls import reverse

from matching.models import Search

CHANGELIST = "admin:matching_search_changelist"


def act_url(search: Search, key: str) -> str:
    return reverse("admin:matching_search_act", args=[search.pk, key])


def confirm_single(client, search: Search, key: str, *, reason: str = "ticket 4711", **data):
    """POST the search page's confirmation form for one action."""
    return client.post(act_url(search, key), {"confirm": "yes", "reason": reason, **data})


def confirm_bulk(client, searches, action: str, *, reason: str = "ticket 4711", **data):
    """POST the list's confirmation form, as the intermediate page does."""
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(s.pk) for s in searches], "confirm": "yes", "reason": reason,
         **data},
    )  # fmt: skip


def messages_of(response) -> list[tuple[str, str]]:
    """(level tag, text) of each message the action reported."""
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def texts(response) -> str:
    return "\n".join(text for _, text in messages_of(response))
