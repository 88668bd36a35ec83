"""Standard Webhooks signatures: ours verify with the independent ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.webhooks import (
    WebhookSignatureInvalid,
    new_secret,
    secret_key,
    signature,
    signed_headers,
    verify,
)
from tests.unit.properties import PROPERTY

keys = st.binary(min_size=24, max_size=64)
secrets = keys.map(lambda key: "whsec_" + base64.b64encode(key).decode())
webhook_ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=64
).map(lambda text: f"msg_{text}")
# standardwebhooks reads the body as text, so bodies are UTF-8 (as JSON is).
bodies = st.text(max_size=2_000).map(str.encode)


def now_s() -> int:
    return int(time.time())


@PROPERTY
@given(secret=secrets, webhook_id=webhook_ids, body=bodies)
def test_a_signed_delivery_verifies_with_our_helper_and_with_standardwebhooks(
    secret: str, webhook_id: str, body: bytes
) -> None:
    headers = signed_headers([secret], webhook_id, now_s(), body)

    verify(secret, body, headers, now=time.time())
    Webhook(secret).verify(body, headers, json_parse=False)


@PROPERTY
@given(secret=secrets, webhook_id=webhook_ids, body=bodies)
def test_our_signature_is_the_reference_implementation_s(
    secret: str, webhook_id: str, body: bytes
) -> None:
    timestamp = now_s()
    reference = Webhook(secret).sign(
        webhook_id, datetime.fromtimestamp(timestamp, UTC), body.decode()
    )

    assert signature(secret, webhook_id, timestamp, body) == reference


@PROPERTY
@given(
    secret=secrets,
    webhook_id=webhook_ids,
    body=bodies,
    part=st.sampled_from(["body", "timestamp", "id"]),
)
def test_a_tampered_body_timestamp_or_id_fails(
    secret: str, webhook_id: str, body: bytes, part: str
) -> None:
    headers = signed_headers([secret], webhook_id, now_s(), body)
    if part == "body":
        body += b" "
    elif part == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    else:
        headers["webhook-id"] = webhook_id + "x"

    with pytest.raises(WebhookSignatureInvalid):
        verify(secret, body, headers, now=time.time())
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers, json_parse=False)


@PROPERTY
@given(
    signing=st.lists(secrets, min_size=1, max_size=3, unique=True),
    stranger=secrets,
    webhook_id=webhook_ids,
    body=bodies,
)
def test_with_several_secrets_each_one_verifies_and_no_other_does(
    signing: list[str], stranger: str, webhook_id: str, body: bytes
) -> None:
    headers = signed_headers(signing, webhook_id, now_s(), body)

    assert len(headers["webhook-signature"].split(" ")) == len(signing)
    for secret in signing:
        verify(secret, body, headers, now=time.time())
        Webhook(secret).verify(body, headers, json_parse=False)
    if secret_key(stranger) not in {secret_key(s) for s in signing}:
        with pytest.raises(WebhookSignatureInvalid):
            verify(stranger, body, headers, now=time.time())
        with pytest.raises(WebhookVerificationError):
            Webhook(stranger).verify(body, headers, json_parse=False)


def test_signatures_are_listed_newest_secret_first() -> None:
    newest, older = new_secret(), new_secret()
    headers = signed_headers([newest, older], "msg_1", 1_700_000_000, b"{}")

    assert headers["webhook-signature"].split(" ") == [
        signature(newest, "msg_1", 1_700_000_000, b"{}"),
        signature(older, "msg_1", 1_700_000_000, b"{}"),
    ]
    assert headers["Content-Type"] == "application/json"


def test_a_stale_timestamp_fails_even_with_a_good_signature() -> None:
    secret = new_secret()
    old = now_s() - 301
    headers = signed_headers([secret], "msg_1", old, b"{}")

    with pytest.raises(WebhookSignatureInvalid, match="tolerance"):
        verify(secret, b"{}", headers, now=time.time())
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b"{}", headers, json_parse=False)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"webhook-id": "msg_1", "webhook-timestamp": "1"},
        {"webhook-id": "msg_1", "webhook-timestamp": "soon", "webhook-signature": "v1,AAAA"},
    ],
)
def test_missing_or_malformed_headers_fail(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify(new_secret(), b"{}", headers, now=time.time())


def test_new_secrets_are_32_random_bytes_behind_the_whsec_prefix() -> None:
    made = {new_secret() for _ in range(50)}

    assert len(made) == 50
    assert all(s.startswith("whsec_") and len(secret_key(s)) == 32 for s in made)


@pytest.mark.parametrize(
    "bad", ["whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()]
)
def test_a_secret_that_is_not_24_to_64_base64_bytes_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        secret_key(bad)
