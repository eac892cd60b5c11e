"""A stand-in for the Lambda service endpoint on one machine.

AWS's durable emulator (``dex-local-runner``) drives an execution by calling the
Lambda Invoke API; it does not serve Invoke itself. This server is the Lambda
endpoint both sides use:

* ``POST /2015-03-31/functions/{name}/invocations`` carrying the emulator's
  ``X-Dex-Handler-Invoke: true`` marker: one handler invocation. The durable
  workflow handler runs in this process and its output is returned as Lambda
  would (``X-Amz-Function-Error: Unhandled`` when it raises).
* the same route without the marker: a caller's Invoke of a durable function,
  i.e. *start an execution* (what the Durable API's ``start`` does in AWS). The
  execution is created through the emulator's ``/start-durable-execution``
  route, with AWS's ``DurableExecutionName`` semantics, which the emulator lacks:
  same name and payload returns the existing execution, another payload is
  ``DurableExecutionAlreadyStartedException``.
* anything else (GetDurableExecution, StopDurableExecution,
  SendDurableExecutionCallbackSuccess, checkpoints, ...): proxied to the
  emulator, with the two request shapes it misreads fixed on the way
  (``Statuses`` of ListDurableExecutionsByFunction, ``Error`` of
  StopDurableExecution).

So one ``AWS_ENDPOINT_URL_LAMBDA`` pointing here serves every Lambda call the
Durable API makes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

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
from workflows.durable import tracing

logger = logging.getLogger(__name__)

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
LIST_BY_FUNCTION_PATH = re.compile(r"^/2025-12-01/functions/(?P<name>[^/]+)/durable-executions$")
STOP_PATH = re.compile(r"^/2025-12-01/durable-executions/[^/]+/stop$")
EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HANDLER_INVOKE_MARKER = "X-Dex-Handler-Invoke"  # set by the emulator on every handler invocation
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection"}

DEFAULT_FUNCTION = "matching-workflow"
DEFAULT_HANDLER = "workflows.durable.workflow:handler"


@dataclass
class FunctionConfig:
    handler: str | Callable[..., Any]
    # Lambda's DurableConfig: the emulator takes these per start, AWS per function.
    execution_timeout_seconds: int = 8 * 86_400
    retention_period_days: int = 7
    timeout_seconds: int = 900
    _resolved: Callable[..., Any] | None = field(default=None, repr=False)
    # Held through the first invocation only. In Lambda each invocation has its own sandbox;
    # here invocations share a process, and handlers build boto3 clients lazily from boto3's
    # default session, which is not safe to do from several threads at once.
    _cold_start: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _warm: bool = field(default=False, repr=False)

    def resolve(self) -> Callable[..., Any]:
        if self._resolved is None:
            self._resolved = import_handler(self.handler) if isinstance(self.handler, str) else self.handler
        return self._resolved

    def invoke(self, event: Any, context: Any) -> Any:
        if self._warm:
            return self.resolve()(event, context)
        with self._cold_start:
            try:
                return self.resolve()(event, context)
            finally:
                self._warm = True


class StandinError(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def split_function_identifier(raw: str) -> tuple[str, str | None]:
    """``name``, ``name:qualifier``, a partial or a full function ARN -> (name, qualifier)."""
    value = unquote(raw)
    parts = value.split(":")
    if value.startswith("arn:"):
        # arn:aws:lambda:region:account:function:name[:qualifier]
        if len(parts) < 7 or parts[5] != "function":
            raise StandinError(400, "InvalidParameterValueException", f"not a function ARN: {value}")
        return parts[6], (parts[7] if len(parts) > 7 else None)
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2], (parts[3] if len(parts) > 3 else None)
    return parts[0], (parts[1] if len(parts) > 1 else None)


class InvokeStandinServer(LocalHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        *,
        emulator_url: str,
        functions: dict[str, FunctionConfig],
        region: str,
        account_id: str = "123456789012",
        sync_invoke_timeout_seconds: float = 60.0,
    ) -> None:
        super().__init__(address, _StandinRequestHandler)
        parsed = urlsplit(emulator_url)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"emulator_url must be http://host:port, got {emulator_url!r}")
        self.emulator_host = parsed.hostname
        self.emulator_port = parsed.port
        self.functions = functions
        self.region = region
        self.account_id = account_id
        self.sync_invoke_timeout_seconds = sync_invoke_timeout_seconds
        # Serialises the check-then-start of named executions (the emulator would
        # happily create two executions with one name).
        self.start_lock = threading.Lock()

    # --- talking to the emulator -------------------------------------------------------------

    def emulator_request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.emulator_host, self.emulator_port, timeout=timeout)
        try:
            send_headers = dict(headers or {})
            send_headers["Content-Length"] = str(len(body))
            connection.request(method, target, body=body, headers=send_headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def emulator_json(self, method: str, target: str, payload: Any = None) -> Any:
        body = b"" if payload is None else json.dumps(payload).encode()
        status, _, raw = self.emulator_request(method, target, body, {"Content-Type": "application/json"})
        data = json.loads(raw) if raw else {}
        if status >= 300:
            raise StandinError(
                status,
                str(data.get("Type") or data.get("__type") or "ServiceException"),
                str(data.get("message") or data.get("Message") or data.get("ErrorMessage") or raw[:200]),
            )
        return data

    # --- starting executions -----------------------------------------------------------------

    def start_execution(self, function_name: str, qualifier: str | None, name: str, payload: str) -> str:
        """Start (or find) the execution ``name`` of ``function_name``; return its ARN."""
        config = self.functions[function_name]
        with self.start_lock:
            existing = self._find_by_name(function_name, name)
            if existing is not None:
                details = self.emulator_json("GET", f"/2025-12-01/durable-executions/{quote(existing, safe='')}")
                if _same_json(details.get("InputPayload"), payload):
                    return existing
                raise StandinError(
                    409,
                    "DurableExecutionAlreadyStartedException",
                    f"Durable execution {name} already exists with a different payload",
                )
            started = self.emulator_json(
                "POST",
                "/start-durable-execution",
                {
                    "AccountId": self.account_id,
                    "FunctionName": function_name,
                    "FunctionQualifier": qualifier or "$LATEST",
                    "ExecutionName": name,
                    "ExecutionTimeoutSeconds": config.execution_timeout_seconds,
                    "ExecutionRetentionPeriodDays": config.retention_period_days,
                    "Input": payload,
                },
            )
        return str(started["ExecutionArn"])

    def _find_by_name(self, function_name: str, name: str) -> str | None:
        query = urlencode({"DurableExecutionName": name})
        listed = self.emulator_json(
            "GET", f"/2025-12-01/functions/{quote(function_name, safe='')}/durable-executions?{query}"
        )
        for execution in listed.get("DurableExecutions", []):
            if execution.get("DurableExecutionName") == name:
                return str(execution["DurableExecutionArn"])
        return None

    def wait_for_result(self, arn: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        target = f"/2025-12-01/durable-executions/{quote(arn, safe='')}"
        while True:
            details = self.emulator_json("GET", target)
            if details.get("Status") in TERMINAL or time.monotonic() >= deadline:
                return details
            time.sleep(0.2)


def _same_json(stored: Any, given: str) -> bool:
    try:
        return json.loads(stored or "{}") == json.loads(given or "{}")
    except (TypeError, ValueError):
        return stored == given


class _StandinRequestHandler(JsonRequestHandler):
    server: InvokeStandinServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        if self.path == HEALTH_PATH:
            self.send_json(200, {"status": "ok", "functions": sorted(self.server.functions)})
            return
        body = self.read_body()
        if body is None:
            return
        path = self.path.partition("?")[0]
        try:
            match = INVOKE_PATH.match(path)
            if match and self.command == "POST":
                self._invoke(match["name"], body)
            else:
                self._proxy(body)
        except StandinError as exc:
            self.send_json(
                exc.status,
                {"Type": "User", "message": exc.message, "Message": exc.message},
                {"x-amzn-ErrorType": exc.error_type},
            )

    # --- Invoke ------------------------------------------------------------------------------

    def _invoke(self, raw_name: str, body: bytes) -> None:
        name, qualifier = split_function_identifier(raw_name)
        query = dict(parse_qsl(urlsplit(self.path).query))
        qualifier = query.get("Qualifier") or qualifier
        if name not in self.server.functions:
            raise StandinError(404, "ResourceNotFoundException", f"Function not found: {name}")
        if self.headers.get(HANDLER_INVOKE_MARKER, "").lower() == "true":
            self._run_handler(name, body)
        else:
            self._start(name, qualifier, body)

    def _run_handler(self, name: str, body: bytes) -> None:
        config = self.server.functions[name]
        context = LocalLambdaContext(
            function_name=name,
            region=self.server.region,
            account_id=self.server.account_id,
            timeout_seconds=config.timeout_seconds,
        )
        headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": context.aws_request_id}
        try:
            event = json.loads(body or b"{}")
            result = config.invoke(event, context)
            payload = json.dumps(result).encode()
        except Exception as exc:  # Lambda reports any handler error as an Unhandled function error
            logger.error("handler %s failed:\n%s", name, traceback.format_exc())
            headers["X-Amz-Function-Error"] = "Unhandled"
            self.send_json(
                200,
                {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                },
                headers,
            )
            return
        headers["Content-Type"] = "application/json"
        self.send_bytes(200, payload, headers)

    def _start(self, name: str, qualifier: str | None, body: bytes) -> None:
        execution_name = self.headers.get("X-Amz-Durable-Execution-Name") or uuid.uuid4().hex
        if not EXECUTION_NAME.match(execution_name):
            raise StandinError(400, "InvalidParameterValueException", f"bad DurableExecutionName {execution_name!r}")
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            self.send_bytes(204, b"")
            return
        try:
            payload = (body or b"{}").decode("utf-8")
            json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise StandinError(400, "InvalidRequestContentException", "payload is not JSON") from exc
        arn = self.server.start_execution(name, qualifier, execution_name, payload)
        headers = {"X-Amz-Durable-Execution-Arn": arn, "X-Amz-Executed-Version": "$LATEST"}
        logger.info("started %s as %s (%s)", execution_name, arn, invocation_type)
        if invocation_type == "Event":
            self.send_bytes(202, b"", headers)
            return
        # RequestResponse on a durable function waits for the execution's result.
        details = self.server.wait_for_result(arn, self.server.sync_invoke_timeout_seconds)
        status = details.get("Status")
        if status == "SUCCEEDED":
            headers["Content-Type"] = "application/json"
            self.send_bytes(200, (details.get("Result") or "null").encode(), headers)
            return
        error = details.get("Error") or {"ErrorMessage": f"execution is {status}"}
        headers["X-Amz-Function-Error"] = "Unhandled"
        self.send_json(
            200, {"errorMessage": error.get("ErrorMessage"), "errorType": error.get("ErrorType") or status}, headers
        )

    # --- everything else goes to the emulator ---------------------------------------------------

    def _proxy(self, body: bytes) -> None:
        target = self.path
        path, _, query = target.partition("?")
        if self.command == "POST" and STOP_PATH.match(path):
            body = _wrap_stop_error(body)
        if self.command == "GET" and LIST_BY_FUNCTION_PATH.match(path) and "Statuses=" in query:
            self._list_with_statuses(path, query)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"content-length", "host"}}
        status, response_headers, response_body = self.server.emulator_request(
            self.command, target, body, headers, timeout=60.0
        )
        passthrough = [(k, v) for k, v in response_headers if k.lower() not in _HOP_BY_HOP | {"content-length"}]
        if status >= 400 and not any(k.lower() == "x-amzn-errortype" for k, _ in passthrough):
            # The emulator names the error only in the body's "Type", which botocore does not
            # read; without the header, callers could not catch e.g. ResourceNotFoundException.
            error_type = _error_type_of(response_body)
            if error_type:
                passthrough.append(("x-amzn-ErrorType", error_type))
        self.send_bytes(status, response_body, passthrough)

    def _list_with_statuses(self, path: str, query: str) -> None:
        """ListDurableExecutionsByFunction with botocore's repeated ``Statuses`` honoured.

        The emulator reads only ``StatusFilter``; list everything else it filters, then
        filter and paginate here (the marker is an offset, as the emulator's is).
        """
        params = parse_qsl(query, keep_blank_values=True)
        statuses = {v for k, v in params if k == "Statuses"}
        max_items = int(next((v for k, v in params if k == "MaxItems"), "0") or 0) or 100
        offset = int(next((v for k, v in params if k == "Marker"), "0") or 0)
        forwarded = [(k, v) for k, v in params if k not in {"Statuses", "MaxItems", "Marker"}]
        listed = self.server.emulator_json("GET", f"{path}?{urlencode(forwarded)}")
        matching = [e for e in listed.get("DurableExecutions", []) if e.get("Status") in statuses]
        page = matching[offset : offset + max_items]
        result: dict[str, Any] = {"DurableExecutions": page}
        if offset + max_items < len(matching):
            result["NextMarker"] = str(offset + max_items)
        self.send_json(200, result)


def _error_type_of(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("Type") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value != "User" else None


def _wrap_stop_error(body: bytes) -> bytes:
    """botocore sends StopDurableExecution's Error as the whole body; the emulator wants ``{"Error": ...}``."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return body
    if isinstance(data, dict) and data and "Error" not in data:
        return json.dumps({"Error": data}).encode()
    return body


def parse_function_specs(specs: list[str]) -> dict[str, FunctionConfig]:
    """``name=module:attr`` entries -> function table."""
    functions: dict[str, FunctionConfig] = {}
    for spec in specs:
        name, sep, handler = spec.partition("=")
        if not sep or not name or ":" not in handler:
            raise ValueError(f"--function takes name=module:attribute, got {spec!r}")
        functions[name] = FunctionConfig(handler=handler)
    return functions


def start_in_thread(
    *,
    emulator_url: str,
    functions: dict[str, FunctionConfig],
    region: str = "us-east-1",
    host: str = LOCALHOST,
    port: int = 0,
) -> ServerThread:
    server = InvokeStandinServer((host, port), emulator_url=emulator_url, functions=functions, region=region)
    return serve_in_thread(server, "invoke-standin")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Lambda Invoke stand-in for the durable emulator")
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, default=8792)
    parser.add_argument("--emulator-url", required=True)
    parser.add_argument(
        "--function",
        action="append",
        default=[],
        help=f"name=module:attribute (default {DEFAULT_FUNCTION}={DEFAULT_HANDLER})",
    )
    parser.add_argument("--execution-timeout", type=int, default=8 * 86_400, help="DurableConfig.ExecutionTimeout")
    parser.add_argument("--retention-days", type=int, default=7)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    # As the function's own handler would (it calls this too): off unless OTEL_* asks for traces.
    tracing.configure("snowbuddy-workflow")
    functions = parse_function_specs(args.function or [f"{DEFAULT_FUNCTION}={DEFAULT_HANDLER}"])
    for config in functions.values():
        config.execution_timeout_seconds = args.execution_timeout
        config.retention_period_days = args.retention_days
    server = InvokeStandinServer(
        (args.host, args.port),
        emulator_url=args.emulator_url,
        functions=functions,
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    logger.info("Lambda stand-in on http://%s:%s for %s", args.host, args.port, ", ".join(functions))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
