"""The Durable API as a local HTTP server, standing in for a Lambda Function URL.

Each request is authenticated first (SigV4 and/or API key, as configured), then
turned into a Function URL payload-v2.0 event and handed to
``workflows.durable.api.handler``; its response is mapped back to HTTP the way a
Function URL does it.

Run: ``python -m devtools.durable_local.durable_api_server --port 8790``; the
stack (``stack.py``) starts it with the environment it needs.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import logging
import os
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from devtools.durable_local._http import (
    HEALTH_PATH,
    LOCALHOST,
    JsonRequestHandler,
    LocalHTTPServer,
    LocalLambdaContext,
    ServerThread,
    configure_logging,
    import_handler,
    serve_in_thread,
)
from devtools.durable_local.sigv4 import (
    ApiKeyConfig,
    AuthConfig,
    AuthError,
    SigV4Config,
    authenticate,
)
from workflows.durable import tracing

logger = logging.getLogger(__name__)

DEFAULT_HANDLER = "workflows.durable.api:handler"
DEFAULT_FUNCTION_NAME = "matching-durable-api"
_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml")

Handler = Callable[[dict[str, Any], Any], Any]


def build_function_url_event(
    *,
    method: str,
    raw_target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    region: str,
    account_id: str,
    access_key: str | None,
) -> dict[str, Any]:
    """The payload-v2.0 event a Function URL hands its function for this request."""
    raw_path, _, raw_query = raw_target.partition("?")
    lowered: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        # Function URLs join repeated headers with commas.
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value

    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value

    content_type = lowered.get("content-type", "").lower()
    is_text = not body or content_type.startswith(_TEXT_TYPES)
    if is_text:
        try:
            body_field: str | None = body.decode("utf-8") if body else None
            is_base64 = False
        except UnicodeDecodeError:
            is_text = False
    if not is_text:
        body_field = base64.b64encode(body).decode("ascii")
        is_base64 = True

    now = dt.datetime.now(dt.UTC)
    request_context: dict[str, Any] = {
        "accountId": "anonymous" if access_key is None else account_id,
        "apiId": "local",
        "domainName": lowered.get("host", LOCALHOST),
        "domainPrefix": "local",
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": lowered.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if access_key is not None:
        request_context["authorizer"] = {
            "iam": {
                "accessKey": access_key,
                "accountId": account_id,
                "callerId": access_key,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{account_id}:user/local",
                "userId": access_key,
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": request_context,
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body_field is not None:
        event["body"] = body_field
    return event


def function_url_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Map a handler's return value to HTTP as a Function URL does.

    A dict with ``statusCode`` is a full response; anything else is the JSON body of a 200.
    """
    if isinstance(result, dict) and "statusCode" in result:
        status = int(result["statusCode"])
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        raw = result.get("body")
        if raw is None:
            body = b""
        elif result.get("isBase64Encoded"):
            body = base64.b64decode(raw)
        else:
            body = raw.encode("utf-8") if isinstance(raw, str) else json.dumps(raw).encode()
        if body and not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
        headers.extend(("Set-Cookie", cookie) for cookie in result.get("cookies") or [])
        return status, headers, body
    return 200, [("Content-Type", "application/json")], json.dumps(result).encode()


class DurableApiServer(LocalHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        *,
        auth: AuthConfig,
        handler: Handler | str,
        region: str,
        account_id: str = "123456789012",
        function_name: str = DEFAULT_FUNCTION_NAME,
        public_paths: tuple[str, ...] = (),
    ) -> None:
        super().__init__(address, _DurableApiRequestHandler)
        self.auth = auth
        self._handler_spec = handler
        self._handler: Handler | None = None if isinstance(handler, str) else handler
        self.region = region
        self.account_id = account_id
        self.function_name = function_name
        self.public_paths = public_paths

    def handler(self) -> Handler:
        # Imported on first use so the server can start before api.py is importable.
        if self._handler is None:
            assert isinstance(self._handler_spec, str)
            self._handler = import_handler(self._handler_spec)
        return self._handler


class _DurableApiRequestHandler(JsonRequestHandler):
    server: DurableApiServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _handle logs one line per request, with the auth outcome and timing

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        if self.path == HEALTH_PATH:
            self.send_json(200, {"status": "ok"})
            return
        body = self.read_body()
        if body is None:
            return
        headers = self.header_pairs()
        raw_path = self.path.partition("?")[0]
        access_key: str | None = None
        # Exact paths only: a prefix rule would also open whatever the handler routes below it.
        if raw_path not in self.server.public_paths:
            try:
                mode = authenticate(
                    method=self.command,
                    raw_path=self.path,
                    headers=headers,
                    body=body,
                    config=self.server.auth,
                )
            except AuthError as exc:
                logger.warning("%s %s -> 403 (%s)", self.command, raw_path, exc.reason)
                # The reason helps whoever is wiring a signer locally; AWS says only "Forbidden".
                self.send_json(403, {"Message": "Forbidden", "reason": exc.reason})
                return
            if mode == "iam_sigv4":
                access_key = _access_key_of(headers)

        event = build_function_url_event(
            method=self.command,
            raw_target=self.path,
            headers=headers,
            body=body,
            source_ip=self.client_address[0],
            region=self.server.region,
            account_id=self.server.account_id,
            access_key=access_key,
        )
        context = LocalLambdaContext(
            function_name=self.server.function_name,
            region=self.server.region,
            account_id=self.server.account_id,
        )
        started = time.monotonic()
        try:
            result = self.server.handler()(event, context)
            status, response_headers, response_body = function_url_response(result)
        except Exception:  # a function error is a 502, as on a Function URL
            logger.error("Durable API handler failed:\n%s", traceback.format_exc())
            self.send_json(502, {"Message": "Internal Server Error"})
            return
        logger.info("%s %s -> %s in %.0f ms", self.command, raw_path, status, (time.monotonic() - started) * 1000)
        response_headers.append(("x-amzn-RequestId", context.aws_request_id))
        self.send_bytes(status, response_body, response_headers)


def _access_key_of(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "authorization" and "Credential=" in value:
            return value.split("Credential=", 1)[1].split("/", 1)[0]
    return None


def auth_config_from_env(env: dict[str, str] | None = None) -> AuthConfig:
    """Build the accepted auth modes from ``LOCAL_DURABLE_*`` variables (set by the stack)."""
    env = dict(os.environ if env is None else env)
    modes = {m.strip() for m in env.get("LOCAL_DURABLE_AUTH_MODES", "iam_sigv4,api_key").split(",") if m.strip()}
    unknown = modes - {"iam_sigv4", "api_key"}
    if unknown or not modes:
        raise ValueError(f"LOCAL_DURABLE_AUTH_MODES must name iam_sigv4 and/or api_key, got {sorted(modes)}")
    sigv4 = None
    if "iam_sigv4" in modes:
        credentials: dict[str, str] = {}
        for pair in env.get("LOCAL_DURABLE_SIGV4_CREDENTIALS", "").split(","):
            if pair.strip():
                key_id, _, secret = pair.strip().partition(":")
                if not key_id or not secret:
                    raise ValueError("LOCAL_DURABLE_SIGV4_CREDENTIALS entries are ACCESS_KEY_ID:SECRET")
                credentials[key_id] = secret
        if not credentials:
            raise ValueError("iam_sigv4 needs LOCAL_DURABLE_SIGV4_CREDENTIALS")
        sigv4 = SigV4Config(
            credentials=credentials,
            region=env.get("LOCAL_DURABLE_SIGV4_REGION") or env.get("AWS_DEFAULT_REGION", "us-east-1"),
            service=env.get("LOCAL_DURABLE_SIGV4_SERVICE", "lambda"),
        )
    api_key = None
    if "api_key" in modes:
        keys = frozenset(k.strip() for k in env.get("LOCAL_DURABLE_API_KEYS", "").split(",") if k.strip())
        if not keys:
            raise ValueError("api_key mode needs LOCAL_DURABLE_API_KEYS")
        api_key = ApiKeyConfig(keys=keys, header=env.get("LOCAL_DURABLE_API_KEY_HEADER", "X-API-Key"))
    return AuthConfig(sigv4=sigv4, api_key=api_key)


def start_in_thread(
    *,
    auth: AuthConfig,
    handler: Handler | str = DEFAULT_HANDLER,
    host: str = LOCALHOST,
    port: int = 0,
    region: str = "us-east-1",
    public_paths: tuple[str, ...] = (),
) -> ServerThread:
    server = DurableApiServer((host, port), auth=auth, handler=handler, region=region, public_paths=public_paths)
    return serve_in_thread(server, "durable-api")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--handler", default=os.environ.get("LOCAL_DURABLE_API_HANDLER", DEFAULT_HANDLER))
    parser.add_argument(
        "--public-path",
        action="append",
        default=[p for p in os.environ.get("LOCAL_DURABLE_PUBLIC_PATHS", "").split(",") if p],
        help="exact path the handler authenticates itself, e.g. a provider webhook",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    # As the function's own handler would (it calls this too): off unless OTEL_* asks for traces.
    tracing.configure("snowbuddy-durable-api")
    auth = auth_config_from_env()
    server = DurableApiServer(
        (args.host, args.port),
        auth=auth,
        handler=args.handler,
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        public_paths=tuple(args.public_path),
    )
    logger.info("Durable API on http://%s:%s (auth: %s)", args.host, args.port, ", ".join(auth.modes))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
