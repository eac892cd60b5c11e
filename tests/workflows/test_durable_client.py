"""The signed Durable API client against a loopback server that really checks SigV4."""

import json

import pytest

from devtools.durable_local.sigv4 import AuthError, SigV4Config, verify_sigv4
from tests.helpers.aws import fake_aws_credentials
from tests.helpers.http import FakeHandler, serve
from workflows.durable_console.client import (
    DurableApiClient,
    DurableApiConfig,
    DurableApiConfigError,
    DurableApiRejected,
    DurableApiUnavailable,
)

ACCESS_KEY, SECRET_KEY, REGION = "AKIDLOCALTEST", "local-secret-for-tests", "ap-northeast-1"


class _Recorder(FakeHandler):
    def _handle(self):
        body = self.read_body()
        self.server.seen.append((self.command, self.path, list(self.headers.items()), body))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.reply(status, {"ok": status < 400, "execution_name": "s-1"})

    do_GET = do_POST = _handle


@pytest.fixture
def durable_api():
    server = serve(_Recorder)
    server.seen, server.statuses = [], []
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    fake_aws_credentials(monkeypatch, REGION, key=ACCESS_KEY, secret=SECRET_KEY)


def _client(server, **overrides) -> DurableApiClient:
    config = {
        "base_url": f"http://127.0.0.1:{server.server_port}",
        "auth_mode": "iam_sigv4",
        "sigv4_service": "lambda",
        "region": REGION,
        "backoff_seconds": 0.01,
        **overrides,
    }
    return DurableApiClient(DurableApiConfig(**config))


def _verify(seen, *, service="lambda", region=REGION):
    method, path, headers, body = seen
    return verify_sigv4(
        method=method,
        raw_path=path,
        headers=headers,
        body=body,
        config=SigV4Config(credentials={ACCESS_KEY: SECRET_KEY}, region=region, service=service),
    )


START = {
    "search_id": "s-1",
    "attempt": 1,
    "seeker_id": "u1",
    "preferences": {"role": "coach"},
    "callback_webhook": "http://127.0.0.1/webhooks/matching",
    "timeout_seconds": 3600,
}


def test_a_start_request_is_signed_over_exactly_the_bytes_sent(durable_api, aws_env):
    assert _client(durable_api).start(**START)["execution_name"] == "s-1"
    (request,) = durable_api.seen
    assert request[0] == "POST" and request[1] == "/workflows/matching/start"
    assert _verify(request) == ACCESS_KEY
    assert json.loads(request[3]) == START


def test_the_signature_names_the_configured_service_and_region(durable_api, aws_env):
    _client(durable_api, sigv4_service="execute-api").get("s-1", include_candidates=True)
    (request,) = durable_api.seen
    assert request[1] == "/workflows/matching/s-1?include_candidates=true"
    assert _verify(request, service="execute-api")
    with pytest.raises(AuthError):
        _verify(request, service="lambda")
    with pytest.raises(AuthError):
        _verify(request, service="execute-api", region="us-east-1")


def test_a_5xx_is_retried_and_every_try_is_signed_afresh(durable_api, aws_env):
    durable_api.statuses = [503, 502]
    _client(durable_api).cancel("s-1", reason="user asked")
    assert len(durable_api.seen) == 3
    for request in durable_api.seen:
        assert _verify(request) == ACCESS_KEY


def test_a_4xx_is_not_retried(durable_api, aws_env):
    durable_api.statuses = [409]
    with pytest.raises(DurableApiRejected) as excinfo:
        _client(durable_api).intervene("s-1", decision="approve", approved_user_ids=["u2"])
    assert excinfo.value.status_code == 409
    assert len(durable_api.seen) == 1


def test_persistent_5xx_raise_unavailable_after_the_last_try(durable_api, aws_env):
    durable_api.statuses = [500, 500, 500]
    with pytest.raises(DurableApiUnavailable):
        _client(durable_api).status_batch(["s-1"])
    assert len(durable_api.seen) == 3


def test_an_unreachable_api_raises_unavailable(aws_env):
    client = DurableApiClient(
        DurableApiConfig(base_url="http://127.0.0.1:9", auth_mode="iam_sigv4", region=REGION, backoff_seconds=0.01)
    )
    with pytest.raises(DurableApiUnavailable):
        client.get("s-1")


def test_api_key_mode_sends_the_key_in_the_configured_header(durable_api):
    client = _client(durable_api, auth_mode="api_key", api_key="k-123", api_key_header="X-Workflow-Key")
    client.get("s-1")
    headers = dict(durable_api.seen[0][2])
    assert headers["X-Workflow-Key"] == "k-123"
    assert "Authorization" not in headers


def test_batch_status_refuses_more_than_a_hundred_ids(durable_api):
    with pytest.raises(ValueError):
        _client(durable_api, auth_mode="api_key", api_key="k").status_batch([str(i) for i in range(101)])
    assert durable_api.seen == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MATCHING_WORKFLOW_URL": ""}, "MATCHING_WORKFLOW_URL"),
        ({"MATCHING_WORKFLOW_AUTH_MODE": "api_key", "MATCHING_WORKFLOW_API_KEY": ""}, "MATCHING_WORKFLOW_API_KEY"),
        ({"MATCHING_WORKFLOW_AUTH_MODE": "iam_sigv4", "AWS_REGION": ""}, "AWS_REGION"),
    ],
)
def test_missing_settings_fail_fast_with_their_name(settings, overrides, message):
    settings.MATCHING_WORKFLOW_URL = "https://example.invalid"
    for name, value in overrides.items():
        setattr(settings, name, value)
    with pytest.raises(DurableApiConfigError, match=message):
        DurableApiClient.from_settings()


def test_the_trace_context_travels_as_a_signed_header(durable_api, aws_env):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    # A provider of the test's own (the process-wide one stays unset): the client's call runs in it.
    submit = TracerProvider().get_tracer("test").start_span("submit")
    clients = [_client(durable_api), _client(durable_api, auth_mode="api_key", api_key="k")]
    with trace.use_span(submit, end_on_exit=True):
        for client in clients:
            client.start(**START)
            client.session.close()  # no keep-alive connection for the server's close to wait on
    signed, keyed = durable_api.seen
    trace_id = format(submit.get_span_context().trace_id, "032x")
    headers = {k.lower(): v for k, v in signed[2]}
    assert headers["traceparent"].split("-")[1] == trace_id
    assert "traceparent" in headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert _verify(signed) == ACCESS_KEY
    # Signed like any other header: a traceparent changed on the way no longer verifies.
    forged = [(k, f"00-{'1' * 32}-{'2' * 16}-01" if k.lower() == "traceparent" else v) for k, v in signed[2]]
    with pytest.raises(AuthError):
        _verify((signed[0], signed[1], forged, signed[3]))
    assert {k.lower(): v for k, v in keyed[2]}["traceparent"].split("-")[1] == trace_id
