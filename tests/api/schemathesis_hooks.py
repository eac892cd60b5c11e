"""Hooks of the schemathesis runs (tests/api/test_schemathesis.py; schemathesis.toml names this module).

* Credentials. Every operation of the schemas declares its security alternatives; a provider
  answers each with valid credentials of one test user, taken in turn so that every alternative is
  exercised: the trusted API key with `X-User-Id`, the API key with the user's bearer token (HS256,
  signed with the test secret, audience `user_core`), and (reads only) the token alone. The profile
  push gets the trusted key alone, the internal schema's operations the internal service token.
* Signatures. The signed workflow callback (the internal schema's webhook, run as the operation
  `POST /webhooks/matching`) declares its signature as a security scheme: the provider marks the
  header and before_call signs the exact bytes schemathesis sends, with a fresh timestamp (unless the
  case is about the timestamp header itself). Missing or replaced signatures go out as they are.
* Rules JSON Schema cannot say, for valid cases only (an invalid one is sent as generated, to be
  refused): ranks and user ids are unique across a callback's `results`; a profile PUT names in its
  body (if at all) the user its URL names.

The values come from the environment the test sets: SNOWBUDDY_FUZZ_API_KEY, SNOWBUDDY_FUZZ_USER_ID
(a UUID), SNOWBUDDY_FUZZ_JWT_SECRET, SNOWBUDDY_FUZZ_INTERNAL_TOKEN, SNOWBUDDY_FUZZ_WEBHOOK_SECRET.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
import uuid

import jwt
import schemathesis
from schemathesis.core.parameters import ParameterLocation

from workflows.durable.signing import sign

CALLBACK_PATH = "/webhooks/matching"
SEARCHES_PATH = "/matching/searches"
PROFILE_PATH = "/matching/profiles/{user_id}"

HEADER_OF_SCHEME = {
    "SnowTraceApiKey": "X-API-Key",
    "SnowTraceUserToken": "Authorization",
    "SnowTraceUserId": "X-User-Id",
    "TrustedServiceApiKey": "X-API-Key",
    "InternalServiceToken": "Authorization",
    "WebhookSignature": "webhook-signature",
}
# The signature scheme's credential until before_call signs the bytes being sent. A probe that
# replaces or removes it (schemathesis' ignored_auth) gets no signature.
SIGN_HERE = "to-be-signed"


def _credentials() -> dict[str, str]:
    user_id = os.environ["SNOWBUDDY_FUZZ_USER_ID"]
    now = int(time.time())
    token = jwt.encode(
        {"sub": user_id, "aud": "user_core", "iat": now, "exp": now + 3600},  # the server's default audience
        os.environ["SNOWBUDDY_FUZZ_JWT_SECRET"],
        algorithm="HS256",
    )
    return {
        "SnowTraceApiKey": os.environ["SNOWBUDDY_FUZZ_API_KEY"],
        "TrustedServiceApiKey": os.environ["SNOWBUDDY_FUZZ_API_KEY"],
        "SnowTraceUserToken": f"Bearer {token}",
        "SnowTraceUserId": user_id,
        "InternalServiceToken": f"Bearer {os.environ.get('SNOWBUDDY_FUZZ_INTERNAL_TOKEN', '')}",
        "WebhookSignature": SIGN_HERE,
    }


# A 401 is an answer to check, not a cue to fetch new credentials (retry_on=[]).
@schemathesis.auth(refresh_interval=600, retry_on=[])
class SnowbuddyCredentials:
    def __init__(self) -> None:
        self._turn = itertools.count()

    def get(self, case, ctx):
        return _credentials()

    def set(self, case, data, ctx):
        alternatives = [a for a in case.operation.definition.raw.get("security", []) if a]
        if not alternatives:
            return
        chosen = alternatives[next(self._turn) % len(alternatives)]
        if case.headers is None:
            case.headers = {}
        for scheme in chosen:
            case.headers[HEADER_OF_SCHEME[scheme]] = data[scheme]


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    if headers.get("webhook-signature") != SIGN_HERE:
        return
    if case.meta is None or not case.meta.is_negative_at(ParameterLocation.HEADER):
        headers["webhook-timestamp"] = str(int(time.time()))
    try:
        timestamp = int(headers["webhook-timestamp"])
        raw = json.dumps(case.body).encode("utf-8")  # as schemathesis serializes a JSON body
    except (KeyError, TypeError, ValueError):
        return  # a timestamp that is not one, or no JSON body: sent unsigned, to be refused
    secret = os.environ["SNOWBUDDY_FUZZ_WEBHOOK_SECRET"]
    headers["webhook-signature"] = sign(secret, str(headers.get("webhook-id", "")), timestamp, raw)
    case.headers = headers


@schemathesis.hook
def map_case(context, case):
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return case
    if case.path == CALLBACK_PATH:
        return _unique_results(case)
    if case.path == PROFILE_PATH and case.method == "PUT":
        return _same_user_as_the_url(case)
    if case.path == SEARCHES_PATH and case.method == "POST":
        return _fresh_idempotency_key(case)
    return case


def _fresh_idempotency_key(case):
    """A key names one request: reused with another body it is a 422 by design (the IETF draft), which
    JSON Schema cannot express, so each generated submit gets its own."""
    headers = dict(case.headers or {})
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = uuid.uuid4().hex
        case.headers = headers
    return case


def _unique_results(case):
    payload = case.body.get("payload") if isinstance(case.body, dict) else None
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list) or not all(isinstance(m, dict) for m in results):
        return case
    ranks, user_ids = [m.get("rank") for m in results], [m.get("user_id") for m in results]
    if len(set(map(repr, ranks))) == len(ranks) and len(set(map(repr, user_ids))) == len(user_ids):
        return case
    body = copy.deepcopy(case.body)  # examples are shared: never edit in place
    for position, match in enumerate(body["payload"]["results"]):
        match["rank"] = position + 1
        match["user_id"] = f"{str(match.get('user_id', ''))[:58]}-{position}"
    case.body = body
    return case


def _same_user_as_the_url(case):
    """A profile body may name its user only as the URL does (JSON Schema cannot relate the two)."""
    user_id = (case.path_parameters or {}).get("user_id")
    if isinstance(case.body, dict) and "user_id" in case.body and case.body["user_id"] != user_id:
        case.body = {**case.body, "user_id": user_id}
    return case
