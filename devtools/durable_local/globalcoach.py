"""A simulated GlobalCoach, the external vetting provider.

``POST /vetting-requests`` ``{candidate_ids, callback_url, token}`` -> ``202 {"request_id"}``.
Later, depending on the mode, it POSTs ``{token, approved_user_ids, rejected_user_ids}`` to
``callback_url``:

* ``approve_all`` / ``reject_all``;
* ``approve_fraction``: the first ``round(fraction * n)`` candidates in the order sent (the
  workflow sends them best first, so the top ones pass), the rest rejected;
* ``staff``: never answers; a staff member answers through the console's *intervene*.

The answer is sent after ``delay_seconds`` (bounded worker pool, bounded retries). An
``Idempotency-Key`` header makes a repeated request (a retried workflow step) return the
first request instead of scheduling a second answer. Mode, delay and fraction can be changed
at run time with ``PUT /__control/config`` (tests, demos), and ``GET /vetting-requests``
lists what was received.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from devtools.durable_local._http import (
    HEALTH_PATH,
    LOCALHOST,
    JsonRequestHandler,
    LocalHTTPServer,
    ServerThread,
    configure_logging,
    serve_in_thread,
)

logger = logging.getLogger(__name__)

MODES = ("approve_all", "approve_fraction", "reject_all", "staff")
MAX_REQUESTS = 1000  # remembered requests; beyond this the provider answers 503
MAX_CANDIDATES = 100
CALLBACK_ATTEMPTS = 5


@dataclass
class ProviderConfig:
    mode: str = "approve_all"
    delay_seconds: float = 2.0
    fraction: float = 0.5
    api_key: str | None = None  # when set, requests need "Authorization: Bearer <key>"

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        if not 0.0 <= self.delay_seconds <= 86_400:
            raise ValueError("delay_seconds must be between 0 and 86400")


@dataclass
class VettingRequest:
    request_id: str
    candidate_ids: list[str]
    callback_url: str
    token: str
    mode: str
    received_at: float
    state: str = "pending"  # pending | answered | failed | waiting_for_staff
    approved_user_ids: list[str] = field(default_factory=list)
    rejected_user_ids: list[str] = field(default_factory=list)
    callback_status: int | None = None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("token")  # a bearer credential for the callback
        return data


def decide(candidate_ids: list[str], mode: str, fraction: float) -> tuple[list[str], list[str]]:
    if mode == "approve_all":
        return list(candidate_ids), []
    if mode == "reject_all":
        return [], list(candidate_ids)
    cut = round(fraction * len(candidate_ids))
    return list(candidate_ids[:cut]), list(candidate_ids[cut:])


class GlobalCoachServer(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], config: ProviderConfig) -> None:
        config.validate()
        super().__init__(address, _GlobalCoachRequestHandler)
        self.config = config
        self.lock = threading.Lock()
        self.requests: dict[str, VettingRequest] = {}
        self.by_idempotency_key: dict[str, str] = {}
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="globalcoach-answer")
        self._closing = threading.Event()

    def submit(
        self, candidate_ids: list[str], callback_url: str, token: str, idempotency_key: str | None
    ) -> tuple[VettingRequest, bool]:
        with self.lock:
            if idempotency_key and idempotency_key in self.by_idempotency_key:
                return self.requests[self.by_idempotency_key[idempotency_key]], False
            if len(self.requests) >= MAX_REQUESTS:
                raise OverflowError
            request = VettingRequest(
                request_id=str(uuid.uuid4()),
                candidate_ids=candidate_ids,
                callback_url=callback_url,
                token=token,
                mode=self.config.mode,
                received_at=time.time(),
            )
            self.requests[request.request_id] = request
            if idempotency_key:
                self.by_idempotency_key[idempotency_key] = request.request_id
            delay, fraction = self.config.delay_seconds, self.config.fraction
        if request.mode == "staff":
            request.state = "waiting_for_staff"
        else:
            self.pool.submit(self._answer, request, delay, fraction)
        return request, True

    def _answer(self, request: VettingRequest, delay: float, fraction: float) -> None:
        # Event.wait rather than sleep, so shutdown does not wait out a long delay.
        if self._closing.wait(delay):
            return
        approved, rejected = decide(request.candidate_ids, request.mode, fraction)
        body = {"token": request.token, "approved_user_ids": approved, "rejected_user_ids": rejected}
        for attempt in range(1, CALLBACK_ATTEMPTS + 1):
            try:
                response = requests.post(request.callback_url, json=body, timeout=10)
                request.callback_status = response.status_code
                if response.status_code < 500:
                    break
            except requests.RequestException as exc:
                logger.warning("callback for %s failed (attempt %d): %s", request.request_id, attempt, exc)
            if self._closing.wait(min(2.0**attempt, 30.0)):
                return
        ok = request.callback_status is not None and request.callback_status < 300
        request.approved_user_ids, request.rejected_user_ids = approved, rejected
        request.state = "answered" if ok else "failed"
        logger.info(
            "answered %s: %d approved, %d rejected -> HTTP %s",
            request.request_id,
            len(approved),
            len(rejected),
            request.callback_status,
        )

    def stop_answering(self) -> None:
        self._closing.set()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        self.stop_answering()
        super().shutdown()


class _GlobalCoachRequestHandler(JsonRequestHandler):
    server: GlobalCoachServer

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self.send_json(200, {"status": "ok"})
        elif self.path == "/vetting-requests":
            with self.server.lock:
                items = [r.public() for r in self.server.requests.values()]
            self.send_json(200, {"vetting_requests": items})
        elif self.path == "/__control/config":
            self.send_json(200, self._config_view())
        else:
            self.send_json(404, {"error": "not_found"})

    def do_PUT(self) -> None:
        if self.path != "/__control/config":
            self.send_json(404, {"error": "not_found"})
            return
        body = self.read_body()
        if body is None:
            return
        try:
            changes = json.loads(body or b"{}")
            config = self.server.config
            updated = ProviderConfig(
                mode=changes.get("mode", config.mode),
                delay_seconds=float(changes.get("delay_seconds", config.delay_seconds)),
                fraction=float(changes.get("fraction", config.fraction)),
                api_key=config.api_key,
            )
            updated.validate()
        except (ValueError, TypeError, AttributeError) as exc:
            self.send_json(400, {"error": "invalid_config", "detail": str(exc)})
            return
        self.server.config = updated
        self.send_json(200, self._config_view())

    def do_POST(self) -> None:
        if self.path != "/vetting-requests":
            self.send_json(404, {"error": "not_found"})
            return
        body = self.read_body()
        if body is None:
            return
        api_key = self.server.config.api_key
        if api_key is not None:
            presented = self.headers.get("Authorization", "")
            if not hmac.compare_digest(presented.encode(), f"Bearer {api_key}".encode()):
                self.send_json(401, {"error": "unauthorized"})
                return
        try:
            data = json.loads(body)
            candidate_ids = data["candidate_ids"]
            callback_url = data["callback_url"]
            token = data["token"]
            if (
                not isinstance(candidate_ids, list)
                or not all(isinstance(c, str) for c in candidate_ids)
                or not 0 < len(candidate_ids) <= MAX_CANDIDATES
                or not isinstance(callback_url, str)
                or not callback_url.startswith(("http://", "https://"))
                or not isinstance(token, str)
                or not token
            ):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            self.send_json(400, {"error": "invalid_request"})
            return
        try:
            request, created = self.server.submit(
                candidate_ids, callback_url, token, self.headers.get("Idempotency-Key")
            )
        except OverflowError:
            self.send_json(503, {"error": "too_many_requests"})
            return
        logger.info(
            "vetting request %s (%d candidates, mode %s)%s",
            request.request_id,
            len(candidate_ids),
            request.mode,
            "" if created else " repeated",
        )
        self.send_json(202, {"request_id": request.request_id, "state": request.state})

    def _config_view(self) -> dict[str, Any]:
        config = self.server.config
        return {"mode": config.mode, "delay_seconds": config.delay_seconds, "fraction": config.fraction}


def start_in_thread(config: ProviderConfig, host: str = LOCALHOST, port: int = 0) -> ServerThread:
    return serve_in_thread(GlobalCoachServer((host, port), config), "globalcoach")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Simulated GlobalCoach vetting provider")
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, default=8794)
    parser.add_argument("--mode", choices=MODES, default=os.environ.get("GLOBALCOACH_MODE", "approve_all"))
    parser.add_argument("--delay", type=float, default=float(os.environ.get("GLOBALCOACH_DELAY_SECONDS", "2")))
    parser.add_argument("--fraction", type=float, default=float(os.environ.get("GLOBALCOACH_FRACTION", "0.5")))
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    config = ProviderConfig(
        mode=args.mode,
        delay_seconds=args.delay,
        fraction=args.fraction,
        api_key=os.environ.get("GLOBALCOACH_API_KEY") or None,
    )
    server = GlobalCoachServer((args.host, args.port), config)
    logger.info(
        "GlobalCoach on http://%s:%s (mode %s, delay %ss)", args.host, args.port, config.mode, config.delay_seconds
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop_answering()
        server.server_close()


if __name__ == "__main__":
    main()
