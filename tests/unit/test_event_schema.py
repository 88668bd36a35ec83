"""shared/contracts/event.v1.json is the contract of what goes on ``malipo.events``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.db.models import PaymentIntent, Transfer
from shared.payments import payment_view
from shared.transfers import transfer_view
from tests.support.bus import event_validator

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def payment(status: str, **fields: Any) -> PaymentIntent:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "merchant_id": uuid.uuid4(),
        "gateway": "daraja",
        "amount_minor": 1500,
        "currency": "KES",
        "phone": "254712345678",
        "reference": "ORD-1",
        "description": None,
        "flow": "push",
        "next_action": None,
        "status": status,
        "flags": [],
        "refunded_minor": 0,
        "created_at": NOW,
        "submitted_at": NOW,
        "finished_at": NOW,
        "expires_at": None,
        **fields,
    }
    return PaymentIntent(**values)


def transfer(kind: str, status: str, **fields: Any) -> Transfer:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "kind": kind,
        "merchant_id": uuid.uuid4(),
        "payment_id": uuid.uuid4() if kind == "refund" else None,
        "gateway": "daraja",
        "amount_minor": 400,
        "currency": "KES",
        "phone": "254712345678",
        "reason": "returned",
        "status": status,
        "created_at": NOW,
        "finished_at": NOW,
        **fields,
    }
    return Transfer(**values)


def body(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "timestamp": NOW.isoformat(), "data": data}


@given(
    status=st.sampled_from(["succeeded", "failed", "cancelled", "expired"]),
    amount=st.integers(min_value=1, max_value=10**12),
    refunded=st.integers(min_value=0, max_value=10**12),
    fee=st.none() | st.integers(min_value=0, max_value=1000),
    failed=st.booleans(),
    flags=st.lists(st.sampled_from(["late_success", "duplicate_collection"]), max_size=2),
)
def test_every_payment_event_malipo_writes_keeps_the_contract(
    status: str, amount: int, refunded: int, fee: int | None, failed: bool, flags: list[str]
) -> None:
    intent = payment(
        status,
        amount_minor=amount,
        refunded_minor=min(refunded, amount),
        fee_minor=fee,
        failure_code="insufficient_funds" if failed else None,
        failure_message="The balance is too low" if failed else None,
        receipt=None if failed else "SKL1234567",
        flags=flags,
    )
    event_validator().validate(body(f"payment.{status}", payment_view(intent)))


@pytest.mark.parametrize(
    ("kind", "status", "outcome"),
    [
        ("refund", "succeeded", "succeeded"),
        ("refund", "failed", "failed"),
        ("payout", "succeeded", "succeeded"),
        ("payout", "rejected", "failed"),
    ],
)
def test_every_transfer_event_keeps_the_contract(kind: str, status: str, outcome: str) -> None:
    row = transfer(kind, status, receipt="SKR1234567" if outcome == "succeeded" else None)
    event_validator().validate(body(f"{kind}.{outcome}", transfer_view(row)))


@pytest.mark.parametrize(
    "broken",
    [
        lambda b: b.pop("timestamp"),
        lambda b: b.update(type="payment.paid"),
        lambda b: b["data"].pop("id"),
        lambda b: b["data"].update(amount="1500"),
        lambda b: b["data"].update(currency="kes"),
        lambda b: b["data"].update(status="submitted"),
        lambda b: b["data"].update(unexpected=True),
        lambda b: b.update(type="refund.succeeded"),  # a payment's data under a refund's type
    ],
)
def test_a_body_off_the_contract_is_refused(broken: Any) -> None:
    event = body("payment.succeeded", payment_view(payment("succeeded", receipt="SKL1234567")))
    event_validator().validate(event)
    broken(event)
    with pytest.raises(jsonschema.ValidationError):
        event_validator().validate(event)
