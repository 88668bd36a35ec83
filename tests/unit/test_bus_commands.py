"""The command contract: signing secrets, signatures, and the schemas the client sends against."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingress.bus_access import permissions
from shared.bus_commands import COMMANDS, schema_errors, signing_secret
from shared.client import CommandPublisher, PaymentCreate, PaymentRetry, PayoutCreate, RefundCreate
from shared.crypto import new_api_key
from shared.webhooks import WebhookSignatureInvalid, signature, verify

MERCHANT = str(uuid.UUID(int=7))
keys = st.builds(lambda: new_api_key().token)
references = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _.:/#-]{0,63}", fullmatch=True)
idempotency_keys = st.from_regex(r"[\x21-\x7e]{1,255}", fullmatch=True)
texts = st.text(min_size=1, max_size=100)
commands = st.one_of(
    st.builds(
        PaymentCreate,
        idempotency_key=idempotency_keys,
        amount=st.integers(min_value=1, max_value=10**9),
        currency=st.sampled_from(["KES", "XOF", "AMD"]),
        phone=st.text(min_size=1, max_size=32),
        reference=references,
        description=st.none() | texts,
    ),
    st.builds(PaymentRetry, payment_id=st.uuids().map(str)),
    st.builds(
        RefundCreate,
        idempotency_key=idempotency_keys,
        payment_id=st.uuids().map(str),
        reason=texts,
        amount=st.none() | st.integers(min_value=1, max_value=10**9),
    ),
    st.builds(
        PayoutCreate,
        idempotency_key=idempotency_keys,
        amount=st.integers(min_value=1, max_value=10**9),
        currency=st.sampled_from(["KES", "XOF"]),
        phone=st.text(min_size=1, max_size=32),
        reason=texts,
    ),
)


def publisher(api_key: str) -> CommandPublisher:
    return CommandPublisher("amqp://guest:guest@127.0.0.1:5672/%2F", api_key, MERCHANT)


@given(api_key=keys, other=keys, body=st.binary(max_size=512), timestamp=st.integers(0, 2**33))
def test_a_signature_verifies_under_its_key_s_secret_only(
    api_key: str, other: str, body: bytes, timestamp: int
) -> None:
    secret = signing_secret(api_key)
    assert secret == signing_secret(api_key)  # derived: the service needs only its key
    headers = {
        "webhook-id": "m-1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, "m-1", timestamp, body),
    }
    verify(secret, body, headers, now=timestamp, tolerance_s=0)
    with pytest.raises(WebhookSignatureInvalid):
        verify(signing_secret(other), body, headers, now=timestamp, tolerance_s=0)
    with pytest.raises(WebhookSignatureInvalid):
        verify(secret, body + b" ", headers, now=timestamp, tolerance_s=0)


@given(api_key=keys)
def test_the_signing_secret_is_not_the_api_key(api_key: str) -> None:
    assert api_key.split("_", 2)[2] not in signing_secret(api_key)


@given(command=commands)
def test_every_command_the_client_builds_fits_its_published_schema(command: object) -> None:
    body = json.loads(publisher(new_api_key().token).body(command))  # type: ignore[arg-type]
    assert body["command"] in COMMANDS
    assert schema_errors(body["command"], body) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda b: b.pop("idempotency_key"), "(body)"),
        (lambda b: b.update(version=2), "version"),
        (lambda b: b["data"].update(amount="100"), "data/amount"),
        (lambda b: b["data"].update(colour="red"), "data"),
        (lambda b: b["data"].pop("reference"), "data"),
        (lambda b: b.update(merchant_id="not-a-uuid"), "merchant_id"),
    ],
)
def test_the_schema_refuses_what_the_api_would_not_take(change: object, where: str) -> None:
    body = json.loads(
        publisher(new_api_key().token).body(
            PaymentCreate(
                idempotency_key="k-1", amount=100, currency="KES", phone="0712", reference="r"
            )
        )
    )
    change(body)  # type: ignore[operator]
    problems = schema_errors("payment.create", body)
    assert problems
    assert problems[0].startswith(where)


def test_the_client_refuses_to_send_what_breaks_the_schema() -> None:
    with pytest.raises(ValueError, match="does not fit its schema"):
        publisher(new_api_key().token).body(
            PaymentCreate(idempotency_key="k", amount=0, currency="KES", phone="1", reference="r")
        )


@given(name=st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True))
def test_a_service_may_write_commands_and_its_own_queues_only(name: str) -> None:
    configure, write, read = (re.compile(p) for p in permissions(name))
    assert write.match("malipo.commands")
    assert read.match("malipo.events")
    for mine in (f"svc.{name}.replies", f"svc.{name}.events"):
        assert configure.match(mine)
        assert write.match(mine)
        assert read.match(mine)
    for theirs in (
        "payments",
        "malipo.events",
        "malipo.commands.refused",
        f"svc.{name}x.replies",
        "",
    ):
        assert not configure.match(theirs)
    for theirs in ("payments", "malipo.events", "amq.default", "malipo.commands.refused"):
        assert not write.match(theirs)
    assert not read.match("malipo.commands")


@pytest.mark.parametrize("name", ["", "Orders", "a.b", "-x", "x" * 64, "a b"])
def test_a_service_name_is_refused_unless_plain(name: str) -> None:
    with pytest.raises(ValueError, match="service name"):
        permissions(name)
