"""IntaSend money out end to end: chargebacks for refunds, send-money for payouts.

The simulator's own record (``times_moved`` per request) is the witness that each
transfer moved money exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import ApiClient
from tests.e2e.test_intasend_flow import (
    IntaSendMerchant,
    make_intasend_merchant,
    random_phone,
    start_payment,
)
from tests.support.intasend_sim import IntaSendSimulator
from tests.support.money_out import (
    balance_of,
    final_transfer,
    ledger_sum,
    new_key,
    request_payout,
    request_refund,
    transfer_row,
)
from tests.support.payments import final_view, view_of

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


@pytest.fixture
def isim(sandbox_server: Any, test_env: dict[str, str]) -> Iterator[IntaSendSimulator]:
    simulator = IntaSendSimulator.for_sandbox_port(test_env["MALIPO_SANDBOX_PORT"])
    yield simulator
    simulator.http.close()


@pytest.fixture
def merchant(
    db: Database, settings: Settings, cipher: CredentialCipher, isim: IntaSendSimulator
) -> IntaSendMerchant:
    return make_intasend_merchant(db, settings, cipher, isim)


def collected(api: ApiClient, merchant: IntaSendMerchant, amount: int) -> tuple[str, int]:
    """A succeeded payment and what the merchant nets of it (IntaSend keeps a fee)."""
    payment_id = start_payment(api, merchant, amount=amount)
    view = final_view(api, merchant, payment_id)
    assert view["status"] == "succeeded"
    return payment_id, int(view["net"])


def test_a_refund_is_one_chargeback_and_a_payout_one_send_money(
    api: ApiClient,
    merchant: IntaSendMerchant,
    isim: IntaSendSimulator,
    db: Database,
    settings: Settings,
) -> None:
    payment_id, net = collected(api, merchant, 20_000)
    key = new_key(db, settings, merchant.id)

    refund_id = request_refund(api, key, payment_id, amount=5_000).json()["id"]
    phone = random_phone()
    payout = request_payout(api, key, amount=3_000, phone=phone)
    assert payout.status_code == 202, payout.text
    refund = final_transfer(api, key, "refund", refund_id)
    paid = final_transfer(api, key, "payout", payout.json()["id"])

    assert (refund["status"], paid["status"]) == ("succeeded", "succeeded")
    chargeback = isim.transfer(uuid.UUID(refund_id).hex)
    send_money = isim.transfer(uuid.UUID(paid["id"]).hex)
    assert chargeback is not None
    assert send_money is not None
    assert chargeback["times_moved"] == send_money["times_moved"] == 1
    assert view_of(api, merchant, payment_id)["refund_status"] == "partial"
    assert balance_of(db, merchant.id, "KES") == (net - 5_000 - 3_000, 0)
    assert ledger_sum(db, merchant.id) == net - 8_000


@pytest.mark.usefixtures("scheduler_process")
def test_a_lost_chargeback_webhook_is_finished_by_the_status_query(
    api: ApiClient,
    merchant: IntaSendMerchant,
    isim: IntaSendSimulator,
    db: Database,
    settings: Settings,
) -> None:
    payment_id, _ = collected(api, merchant, 12_000)
    invoice = view_of(api, merchant, payment_id)["gateway_reference"]
    isim.transfer_scenario(match={"invoice": invoice}, kind="refund", webhook="none")
    key = new_key(db, settings, merchant.id)

    # All of it would be more than the merchant holds: IntaSend kept a fee.
    whole = request_refund(api, key, payment_id)
    assert whole.status_code == 422
    assert whole.json()["error"]["code"] == "insufficient_balance"
    refund_id = request_refund(api, key, payment_id, amount=10_000).json()["id"]
    refund = final_transfer(api, key, "refund", refund_id, timeout_s=60)

    assert refund["status"] == "succeeded"
    witness = isim.transfer(uuid.UUID(refund_id).hex)
    assert witness is not None
    assert witness["times_moved"] == 1
    assert transfer_row(db, refund_id).sends == 1
    assert view_of(api, merchant, payment_id)["refund_status"] == "partial"


def test_a_failed_send_money_releases_the_hold(
    api: ApiClient,
    merchant: IntaSendMerchant,
    isim: IntaSendSimulator,
    db: Database,
    settings: Settings,
) -> None:
    _, net = collected(api, merchant, 15_000)
    phone = random_phone()
    isim.transfer_scenario(match={"phone": phone}, kind="payout", outcome="fail")
    key = new_key(db, settings, merchant.id)

    payout_id = request_payout(api, key, amount=4_000, phone=phone).json()["id"]
    payout = final_transfer(api, key, "payout", payout_id)

    assert payout["status"] == "failed"
    assert payout["failure"]["code"]
    witness = isim.transfer(uuid.UUID(payout_id).hex)
    assert witness is None or witness["times_moved"] == 0
    assert balance_of(db, merchant.id, "KES") == (net, 0)
