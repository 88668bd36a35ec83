"""The Daraja adapter over HTTP against the simulator."""

from __future__ import annotations

import uuid

import pytest

from shared.domain.money import Money
from shared.gateways.base import GatewayOutcomeUnknown, GatewayUnavailable, Outcome, PaymentRequest
from shared.gateways.daraja.client import DarajaAdapter
from shared.gateways.daraja.stk import DarajaCredentials
from shared.gateways.description import GatewaySettings
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS
from tests.support.sim import Simulator
from tests.support.waiting import wait_until


@pytest.fixture
def adapter(settings: Settings, sim: Simulator) -> DarajaAdapter:
    base_url = settings.gateway_settings("daraja").base_url
    return DarajaAdapter(GatewaySettings(base_url, connect_timeout_s=2, read_timeout_s=2))


@pytest.fixture
def credentials() -> DarajaCredentials:
    return DarajaCredentials.from_stored({**DARAJA_CREDENTIALS})


def request(phone: str = "254712345678", amount_minor: int = 10_000, **kw: str) -> PaymentRequest:
    return PaymentRequest(
        payment_id=str(uuid.uuid4()),
        attempt_ref=str(uuid.uuid4()),
        amount=Money(amount_minor, "KES"),
        phone=phone,
        reference=kw.get("reference", "ORDER-2026-000123"),
        description=kw.get("description"),
        callback_url="http://127.0.0.1:9/callbacks/daraja/secret/attempt",
    )


def test_a_push_is_accepted_with_daraja_ids_and_fields_as_daraja_wants(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    result = adapter.push(credentials, request(description="A very long description"))

    assert result.accepted
    assert result.gateway_ref is not None
    assert result.gateway_ref.startswith("ws_CO_")
    [push] = [r for r in sim.requests(kind="stkpush") if r["status"] == 200]
    assert push["body"]["AccountReference"] == "ORDER-2026-0"
    assert push["body"]["TransactionDesc"] == "A very long d"
    assert push["body"]["Amount"] == 100
    assert push["body"]["TransactionType"] == "CustomerPayBillOnline"


def test_a_till_push_names_the_till_as_party_b(adapter: DarajaAdapter, sim: Simulator) -> None:
    till = DarajaCredentials.from_stored(
        {**DARAJA_CREDENTIALS, "mode": "till", "party_b": "600123"}
    )

    assert adapter.push(till, request()).accepted

    [push] = [r for r in sim.requests(kind="stkpush") if r["status"] == 200]
    assert (push["body"]["TransactionType"], push["body"]["PartyB"]) == (
        "CustomerBuyGoodsOnline",
        "600123",
    )


def test_the_token_is_cached_and_fetched_again_once_when_revoked(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    adapter.push(credentials, request())
    adapter.push(credentials, request())
    assert len(sim.requests(kind="oauth")) == 1

    sim.revoke_tokens()
    assert adapter.push(credentials, request()).accepted

    assert len(sim.requests(kind="oauth")) == 2
    assert [r["status"] for r in sim.requests(kind="stkpush")] == [200, 200, 404, 200]


def test_wrong_app_credentials_refuse_the_push_as_configuration(
    adapter: DarajaAdapter, sim: Simulator
) -> None:
    wrong = DarajaCredentials.from_stored({**DARAJA_CREDENTIALS, "consumer_secret": "nope"})

    result = adapter.push(wrong, request())

    assert (result.accepted, result.failure_code) == (False, "gateway_configuration")
    assert sim.requests(kind="stkpush") == []


def test_busy_errors_are_unavailable_and_a_slow_answer_is_unknown(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    sim.scenario(
        match={"phone": "254711222333"},
        push_error={
            "status": 500,
            "errorCode": "500.003.02",
            "errorMessage": "Spike Arrest Violation",
            "times": 1,
        },
    )
    sim.scenario(match={"phone": "254711222444"}, push_delay_s=3)

    with pytest.raises(GatewayUnavailable):
        adapter.push(credentials, request(phone="254711222333"))
    with pytest.raises(GatewayOutcomeUnknown):
        adapter.push(credentials, request(phone="254711222444"))


def test_nothing_listening_is_unavailable_not_unknown(credentials: DarajaCredentials) -> None:
    closed = DarajaAdapter(GatewaySettings("http://127.0.0.1:1", 1, 1))

    with pytest.raises(GatewayUnavailable):
        closed.push(credentials, request())


def test_the_query_says_pending_until_the_outcome_is_due(
    adapter: DarajaAdapter, credentials: DarajaCredentials, sim: Simulator
) -> None:
    sim.scenario(match={"phone": "254711222555"}, result_code=1032, callback_delay_s=1.5)
    checkout_id = str(adapter.push(credentials, request(phone="254711222555")).gateway_ref)

    first = adapter.query_status(credentials, checkout_id)
    final = wait_until(
        lambda: (
            (s := adapter.query_status(credentials, checkout_id)).verdict.outcome != Outcome.PENDING
            and s
        ),
        timeout_s=10,
        what="the query to give the outcome",
    )

    assert first.verdict.outcome == Outcome.PENDING
    assert (final.verdict.outcome, final.verdict.failure_code) == (
        Outcome.CANCELLED,
        "cancelled_by_user",
    )
