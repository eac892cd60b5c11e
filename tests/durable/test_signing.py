"""Standard Webhooks signing and verification (workflows/durable/signing.py)."""

from __future__ import annotations

import base64

import pytest

from workflows.durable import signing

SECRET = "whsec_" + base64.b64encode(b"a-shared-secret-of-32-bytes-long").decode()
BODY = b'{"search_id":"s-1","status":"succeeded","version":7}'
NOW = 1_700_000_000


def headers_for(body: bytes = BODY, secret: str = SECRET, timestamp: int = NOW) -> dict[str, str]:
    return signing.signature_headers(secret, body, msg_id="msg_1", timestamp=timestamp)


def test_the_published_standard_webhooks_vector_verifies() -> None:
    # Test vector from the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == signature
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330"}
    assert signing.verify(secret, {**headers, "webhook-signature": signature}, body, now=1614265330) == (
        "msg_p5jXN8AQM9LWM0D4loKWxJek"
    )


def test_a_signed_body_verifies_and_returns_its_webhook_id() -> None:
    assert signing.verify(SECRET, headers_for(), BODY, now=NOW) == "msg_1"


def test_header_names_are_case_insensitive_and_str_bodies_work() -> None:
    headers = {k.upper(): v for k, v in headers_for().items()}
    assert signing.verify(SECRET, headers, BODY.decode(), now=NOW) == "msg_1"


def test_a_raw_text_secret_is_used_as_is() -> None:
    headers = headers_for(secret="plain text secret")
    assert signing.verify("plain text secret", headers, BODY, now=NOW)
    with pytest.raises(signing.WebhookVerificationError):
        signing.verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(NOW + 1)}, b),
        lambda h, b: ({**h, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, b),
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),
    ],
)
def test_any_change_to_body_or_headers_is_rejected(tamper) -> None:
    headers, body = tamper(headers_for(), BODY)
    with pytest.raises(signing.WebhookVerificationError) as exc:
        signing.verify(SECRET, headers, body, now=NOW)
    assert exc.value.reason == "bad_signature"


def test_a_wrong_secret_is_rejected() -> None:
    other = "whsec_" + base64.b64encode(b"another-secret-entirely-32-bytes").decode()
    with pytest.raises(signing.WebhookVerificationError):
        signing.verify(other, headers_for(), BODY, now=NOW)


@pytest.mark.parametrize(("offset", "ok"), [(-300, True), (300, True), (-301, False), (301, False)])
def test_timestamps_more_than_five_minutes_off_are_rejected(offset: int, ok: bool) -> None:
    headers = headers_for(timestamp=NOW + offset)
    if ok:
        assert signing.verify(SECRET, headers, BODY, now=NOW)
    else:
        with pytest.raises(signing.WebhookVerificationError) as exc:
            signing.verify(SECRET, headers, BODY, now=NOW)
        assert exc.value.reason == "timestamp_out_of_tolerance"


def test_one_valid_signature_among_several_is_enough() -> None:
    good = headers_for()["webhook-signature"]
    old = signing.sign("whsec_" + base64.b64encode(b"old" * 11).decode(), "msg_1", NOW, BODY)
    headers = {**headers_for(), "webhook-signature": f"{old} v2,unknown {good}"}
    assert signing.verify(SECRET, headers, BODY, now=NOW) == "msg_1"


def test_verify_accepts_old_and_new_secrets_during_a_rotation() -> None:
    new = "whsec_" + base64.b64encode(b"the-new-secret-after-rotation-32").decode()
    assert signing.verify([new, SECRET], headers_for(), BODY, now=NOW) == "msg_1"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_rejected(missing: str) -> None:
    headers = {k: v for k, v in headers_for().items() if k != missing}
    with pytest.raises(signing.WebhookVerificationError) as exc:
        signing.verify(SECRET, headers, BODY, now=NOW)
    assert exc.value.reason == "missing_headers"


def test_a_non_numeric_timestamp_is_rejected() -> None:
    with pytest.raises(signing.WebhookVerificationError) as exc:
        signing.verify(SECRET, {**headers_for(), "webhook-timestamp": "yesterday"}, BODY, now=NOW)
    assert exc.value.reason == "bad_timestamp"


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!"])
def test_unusable_secrets_fail_loudly(secret: str) -> None:
    with pytest.raises(ValueError):
        signing.decode_secret(secret)


def test_signature_headers_use_the_current_time_and_a_fresh_id_by_default() -> None:
    first = signing.signature_headers(SECRET, BODY)
    second = signing.signature_headers(SECRET, BODY)
    assert first["webhook-id"] != second["webhook-id"]
    assert signing.verify(SECRET, first, BODY) == first["webhook-id"]
