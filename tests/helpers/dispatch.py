"""The `dispatch_send` stub: a test whose far side is the broker (or the Durable API) takes the
relay's send as done, so a submitted search stays queued and nothing runs it."""

from __future__ import annotations

from datetime import timedelta

import pytest

TARGET = "workflows.dispatch.submit.dispatch_send"


def stub_dispatch_send(monkeypatch: pytest.MonkeyPatch, answer: bool = True, *, record: list | None = None) -> None:
    """Replace the send with one that answers `answer` (False: as if the send was lost); with
    `record`, append each dispatch id handed to it."""

    def send(**kw) -> bool:
        if record is not None:
            record.append(kw["dispatch_id"])
        return answer

    monkeypatch.setattr(TARGET, send)


def stub_dispatch_send_undo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the stub (and the test's other patches) once the relay thread has handed it every record
    committed so far: the relay sends after commit, in its own thread, and a send after the undo
    would be the real one."""
    from workflows.dispatch.submit import dispatch_relay

    assert dispatch_relay.wait_idle(timeout=15), "the dispatch relay did not finish within 15 s"
    monkeypatch.undo()


def past_the_grace(seconds: float = 1.0):
    """An injected sweep time (`dispatch_sweep(now=...)`) at which every record written so far is older
    than DISPATCH_GRACE_SECONDS, the configured grace (no need to set it to 0)."""
    from django.conf import settings
    from django.utils import timezone

    return timezone.now() + timedelta(seconds=settings.DISPATCH_GRACE_SECONDS + seconds)
