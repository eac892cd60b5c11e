"""A webhook receiver on loopback, as SnowTrace would run one: it verifies each delivery with the
Standard Webhooks reference library, dedupes on `webhook-id`, and can be told to fail or stall.
Without a secret it stands for SnowTrace's user service taking behaviour events (`POST /events`,
unsigned, deduped on `Idempotency-Key`)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.helpers.http import FakeHandler, serve

NOTIFICATION_SECRET = "whsec_dGVzdC1ub3RpZmljYXRpb24tc2VjcmV0LTMyLWJ5dGVz"  # base64 of 32 test bytes
MAX_STALL_SECONDS = 10.0


class WebhookReceiver:
    """`script` holds what the next requests get: an HTTP status, or ("stall", seconds) to answer
    only after that long (the sender times out first). When it is empty every request gets 204."""

    def __init__(self, secret: str | None = NOTIFICATION_SECRET, id_header: str = "webhook-id") -> None:
        self.verifier = Webhook(secret) if secret else None
        self.id_header = id_header
        self.lock = threading.Lock()
        self.script: deque = deque()
        self.received: list[dict] = []  # every verified body, duplicates included
        self.by_webhook_id: dict[str, dict] = {}  # what the receiver acted on: once per webhook-id
        self.requests: list[tuple[float, str, int | str]] = []  # (monotonic time, webhook-id, answer)
        self.rejected: list[str] = []
        self.paths: list[str] = []  # the path of each request, in order
        self._stop = threading.Event()
        self.server = serve(_Handler, self, poll_interval=0.1)

    @property
    def url(self) -> str:
        return f"{self.server.url}/snowtrace/matching-notifications"

    @property
    def base_url(self) -> str:
        """A service root on this receiver (SnowTrace's user service posts to `<root>/events`)."""
        return f"{self.server.url}/user-core"

    def for_search(self, search_id: str) -> list[dict]:
        with self.lock:
            return [b for b in self.received if b["search_id"] == str(search_id)]

    def reset(self, *script) -> None:
        with self.lock:
            self.script = deque(script)
            self.received.clear()
            self.by_webhook_id.clear()
            self.requests.clear()
            self.rejected.clear()
            self.paths.clear()

    def stop(self) -> None:
        self._stop.set()
        self.server.stop()

    # The old fixture was a (url, received) pair; keep that reading working.
    def __getitem__(self, index: int):
        return (self.url, self.received)[index]

    @staticmethod
    def parse(raw: bytes) -> dict:
        return json.loads(raw)


class _Handler(FakeHandler):
    def do_POST(self) -> None:
        receiver: WebhookReceiver = self.fake
        raw = self.read_body()
        webhook_id = self.headers.get(receiver.id_header, "")
        with receiver.lock:
            action = receiver.script.popleft() if receiver.script else 204
            receiver.requests.append((time.monotonic(), webhook_id, action))
            receiver.paths.append(self.path)
        if isinstance(action, tuple):
            receiver._stop.wait(min(float(action[1]), MAX_STALL_SECONDS))
            action = 204
        if action >= 300:
            self.reply(action)
            return
        try:
            if receiver.verifier is None:
                body = json.loads(raw)
            else:
                body = receiver.verifier.verify(raw, dict(self.headers.items()))
        except (WebhookVerificationError, ValueError) as exc:
            receiver.rejected.append(str(exc))
            self.reply(401)
            return
        with receiver.lock:
            receiver.received.append(body)
            receiver.by_webhook_id.setdefault(webhook_id, body)
        self.reply(action)  # after a stall the sender may have given up waiting
