"""Refunds on Ameriabank vPOS and ArCa iPay: synchronous, finished by the bank's answer.

Two partial refunds of one paid order give back the whole payment; the bank's own
record of refunds (the witness) shows each made once, for its amount.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import ApiClient
from tests.support.ameria_sim import AmeriaSimulator
from tests.support.arca_sim import ArcaSimulator
from tests.support.hosted import HostedMerchant, gateway_ref, next_action, start_payment
from tests.support.hosted_cases import CASES
from tests.support.money_out import (
    balance_of,
    final_transfer,
    ledger_sum,
    new_key,
    request_refund,
    transfer_row,
)
from tests.support.payments import final_view, view_of
from tests.support.processes import ManagedProcess

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]
BANKS = {"ameria": AmeriaSimulator, "arca": ArcaSimulator}


@pytest.fixture(params=sorted(BANKS))
def bank(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def simulator(bank: str, sandbox_server: ManagedProcess, test_env: dict[str, str]) -> Iterator[Any]:
    client = BANKS[bank](f"http://127.0.0.1:{test_env['MALIPO_SANDBOX_PORT']}/{bank}")
    yield client
    client.close()


@pytest.fixture
def merchant(
    bank: str,
    sandbox_server: ManagedProcess,
    test_env: dict[str, str],
    db: Database,
    settings: Settings,
    cipher: CredentialCipher,
) -> Iterator[HostedMerchant]:
    [case] = [c for c in CASES if c.gateway == bank]
    with case.merchant(
        f"http://127.0.0.1:{test_env['MALIPO_SANDBOX_PORT']}", db, settings, cipher
    ) as created:
        yield created


def paid_order(
    api: ApiClient, merchant: HostedMerchant, simulator: Any, db: Database, drams: int
) -> tuple[str, str]:
    """A payment the customer paid at the bank: (payment id, the bank's order id)."""
    payment_id, _ = start_payment(api, merchant, amount_drams=drams)
    next_action(api, merchant, payment_id)
    order = gateway_ref(db, payment_id)
    simulator.decide(order, "pay")
    assert final_view(api, merchant, payment_id, timeout_s=40)["status"] == "succeeded"
    return payment_id, order


def test_two_partial_refunds_give_the_whole_payment_back_once_each(
    api: ApiClient,
    merchant: HostedMerchant,
    simulator: Any,
    db: Database,
    settings: Settings,
) -> None:
    payment_id, order = paid_order(api, merchant, simulator, db, 9_000)
    key = new_key(db, settings, merchant.id)

    first = request_refund(api, key, payment_id, amount=400_000, reason="one seat returned")
    assert first.status_code == 202, first.text
    assert final_transfer(api, key, "refund", first.json()["id"])["status"] == "succeeded"
    rest = request_refund(api, key, payment_id, reason="event cancelled")
    assert final_transfer(api, key, "refund", rest.json()["id"])["status"] == "succeeded"

    made = simulator.transfers(order)
    assert [(Decimal(t["amount"]), t["times_moved"]) for t in made] == [
        (Decimal(4_000), 1),
        (Decimal(5_000), 1),
    ]
    assert transfer_row(db, rest.json()["id"]).sends == 1
    view = view_of(api, merchant, payment_id)
    assert (view["refund_status"], view["refunded"]) == ("full", 900_000)
    assert balance_of(db, merchant.id, "AMD") == (0, 0)
    assert ledger_sum(db, merchant.id) == 0


@pytest.mark.usefixtures("scheduler_process")
def test_refunds_asked_at_once_reach_the_bank_one_after_the_other(
    api: ApiClient,
    merchant: HostedMerchant,
    simulator: Any,
    db: Database,
    settings: Settings,
) -> None:
    # The bank knows a refund only by its order's refunded total: two undecided refunds of
    # one order could be mistaken for each other, so they are sent one at a time.
    payment_id, order = paid_order(api, merchant, simulator, db, 6_000)
    key = new_key(db, settings, merchant.id)

    with ThreadPoolExecutor(3) as pool:
        answers = list(
            pool.map(
                lambda n: request_refund(api_for(api), key, payment_id, amount=200_000),
                range(3),
            )
        )

    ids = [a.json()["id"] for a in answers]
    finals = [final_transfer(api, key, "refund", i, timeout_s=60) for i in ids]
    assert {f["status"] for f in finals} == {"succeeded"}
    assert [t["times_moved"] for t in simulator.transfers(order)] == [1, 1, 1]
    assert view_of(api, merchant, payment_id)["refund_status"] == "full"
    assert balance_of(db, merchant.id, "AMD") == (0, 0)


def api_for(api: ApiClient) -> ApiClient:
    """A client of its own (a requests session is not shared between threads)."""
    return ApiClient(api.base_url)
