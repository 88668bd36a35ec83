"""Ameriabank vPOS and ArCa iPay refunds over real HTTP: each adapter against its sandbox
simulator, every test run for both banks (``tests.support.bank_refunds``).

Synchronous: the bank's answer is final; a lost answer is settled by the order's refunded
total. The simulator's witness (``/_sim/transfers``) lists every refund it made.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.domain.money import Money
from shared.gateways.base import GatewayOutcomeUnknown, Outcome, ReturnUrls
from shared.gateways.description import GatewaySettings
from shared.gateways.transfers import TransferKind, TransferRequest, TransferState
from tests.support import bank_refunds
from tests.support.bank_refunds import BANK_IDS, BANKS, Bank, Served
from tests.support.hosted_adapter import hosted_request, settled, started

BACK = "https://malipo.example/pay/0b7f3c9e/back"


@pytest.fixture(params=BANKS, ids=BANK_IDS)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    yield from bank_refunds.served(request.param)


@pytest.fixture
def bank(served: Served) -> Bank:
    return served.bank


@pytest.fixture
def adapter(served: Served) -> Any:
    return served.bank.adapter(GatewaySettings(f"{served.root}/{served.bank.api_path}", 2, 2))


@pytest.fixture
def credentials(bank: Bank) -> Any:
    return bank.credentials(bank.description.simulator_credentials)


def paid(adapter: Any, credentials: Any, served: Served, drams: int = 5000) -> str:
    """A paid order of ``drams``: its gateway reference."""
    urls = ReturnUrls(BACK, BACK)
    ref = started(adapter, credentials, hosted_request(served.bank.gateway, urls, drams))
    served.sim.decide(ref, "pay")
    assert settled(adapter, credentials, ref).verdict.outcome is Outcome.SUCCEEDED
    return ref


def refund(bank: Bank, ref: str, drams: int, before_drams: int = 0) -> TransferRequest:
    request_ref = uuid.uuid4().hex
    return TransferRequest(
        kind=TransferKind.REFUND,
        transfer_id=str(uuid.uuid4()),
        request_ref=request_ref,
        amount=Money(drams * 100, "AMD"),
        phone="37477123456",
        reason="Returned goods",
        result_url=f"https://malipo.example/callbacks/{bank.gateway}/s/xr-{request_ref}",
        timeout_url=f"https://malipo.example/callbacks/{bank.gateway}/s/xt-{request_ref}",
        payment_gateway_ref=ref,
        payment_amount=Money(5000_00, "AMD"),
        payment_refunded=Money(before_drams * 100, "AMD"),
    )


def test_a_refund_is_final_at_once_and_shows_in_the_refunded_total(
    adapter: Any, credentials: Any, served: Served, bank: Bank
) -> None:
    ref = paid(adapter, credentials, served)
    first = refund(bank, ref, 2000)

    submission = adapter.refund(credentials, first)

    assert submission.accepted
    assert submission.verdict is not None
    assert (submission.verdict.state, submission.verdict.amount) == (
        TransferState.SUCCEEDED,
        Money(2000_00, "AMD"),
    )
    [sent] = served.sim.requests("refund")
    field, value = bank.sent(2000)
    assert sent["body"][field] == value
    assert adapter.refund_status(credentials, first, None).state is TransferState.SUCCEEDED
    # The next refund is judged against the total after this one.
    assert adapter.refund_status(credentials, refund(bank, ref, 1000, 2000), None).state is (
        TransferState.NOT_FOUND
    )
    [made] = served.sim.transfers(ref)
    assert (made["kind"], made["amount"], made["times_moved"]) == (
        "refund",
        bank.witnessed(2000),
        1,
    )
    # The collection is still a success: it was paid.
    assert adapter.query_status(credentials, ref).verdict.outcome is Outcome.SUCCEEDED


def test_a_refund_above_what_is_left_is_refused_and_nothing_moves(
    adapter: Any, credentials: Any, served: Served, bank: Bank
) -> None:
    ref = paid(adapter, credentials, served)
    assert adapter.refund(credentials, refund(bank, ref, 4000)).accepted

    refused = adapter.refund(credentials, refund(bank, ref, 2000, 4000))

    assert (refused.accepted, refused.failure_code) == (False, "transfer_refused")
    assert len(served.sim.transfers(ref)) == 1
    assert adapter.refund(credentials, refund(bank, ref, 1000, 4000)).accepted  # what was left


def test_a_declined_refund_is_refused_and_not_found_later(
    adapter: Any, credentials: Any, served: Served, bank: Bank
) -> None:
    served.sim.scenario(match={"amount": bank.matched(7000)}, refund_decline=bank.decline)
    ref = paid(adapter, credentials, served, 7000)
    request = refund(bank, ref, 7000)

    refused = adapter.refund(credentials, request)

    assert (refused.accepted, refused.failure_code) == (False, "transfer_refused")
    assert adapter.refund_status(credentials, request, None).state is TransferState.NOT_FOUND
    assert served.sim.transfers(ref) == []


def test_a_lost_refund_answer_is_unknown_and_the_total_says_it_was_made(
    adapter: Any, credentials: Any, served: Served, bank: Bank
) -> None:
    served.sim.scenario(match={"amount": bank.matched(6000)}, refund_delay_s=3)
    ref = paid(adapter, credentials, served, 6000)
    request = refund(bank, ref, 6000)

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.refund(credentials, request)

    assert adapter.refund_status(credentials, request, None).state is TransferState.SUCCEEDED
    [made] = served.sim.transfers(ref)
    assert made["times_moved"] == 1


def test_a_refund_of_an_unpaid_order_is_refused_and_a_wrong_login_is_configuration(
    adapter: Any, credentials: Any, served: Served, bank: Bank
) -> None:
    urls = ReturnUrls(BACK, BACK)
    ref = started(adapter, credentials, hosted_request(bank.gateway, urls))

    unpaid = adapter.refund(credentials, refund(bank, ref, 1000))

    assert (unpaid.accepted, unpaid.failure_code) == (False, "transfer_refused")
    wrong = bank.credentials({**bank.description.simulator_credentials, "password": "wrong"})
    refused = adapter.refund(wrong, refund(bank, ref, 1000))
    assert (refused.accepted, refused.failure_code) == (False, "gateway_configuration")
