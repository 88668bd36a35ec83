"""Refunds on a gateway without a refund API (FastShift): held, then completed by an operator.

The refund is accepted at once with its amount held on the merchant's balance and
reserved on the payment; it waits as ``requires_action`` until an operator records
how the money went back (``/ops`` or ``malipo refund complete``), audited with who.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.crypto import CredentialCipher
from shared.db.session import Database
from shared.settings import Settings
from tests.conftest import ApiClient
from tests.support.fastshift_sim import FastShiftSimulator
from tests.support.hosted import (
    HostedMerchant,
    gateway_ref,
    hosted_merchant,
    next_action,
    start_payment,
)
from tests.support.money_out import (
    audit_actions,
    balance_of,
    ledger_sum,
    new_key,
    request_refund,
    transfer_row,
)
from tests.support.payments import final_view, view_of

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


@pytest.fixture
def merchant(
    db: Database, settings: Settings, cipher: CredentialCipher, fastshift: FastShiftSimulator
) -> HostedMerchant:
    return hosted_merchant(db, settings, cipher, "fastshift", fastshift.new_account())


def paid_payment(
    api: ApiClient, merchant: HostedMerchant, fastshift: FastShiftSimulator, db: Database
) -> str:
    payment_id, _ = start_payment(api, merchant, amount_drams=3000)
    next_action(api, merchant, payment_id)
    fastshift.decide(gateway_ref(db, payment_id), "pay")
    assert final_view(api, merchant, payment_id)["status"] == "succeeded"
    return payment_id


def test_a_refund_waits_for_an_operator_and_settles_once_recorded(
    api: ApiClient,
    merchant: HostedMerchant,
    fastshift: FastShiftSimulator,
    db: Database,
    settings: Settings,
) -> None:
    payment_id = paid_payment(api, merchant, fastshift, db)
    key = new_key(db, settings, merchant.id)

    response = request_refund(api, key, payment_id, amount=100_000, reason="seat cancelled")

    assert response.status_code == 202, response.text
    refund = response.json()
    assert (refund["status"], refund["amount"], refund["payment_id"]) == (
        "requires_action",
        100_000,
        payment_id,
    )
    assert balance_of(db, merchant.id, "AMD") == (200_000, 100_000)  # held, not yet gone
    view = view_of(api, merchant, payment_id)
    assert view["refund_status"] == "none"
    assert [r["id"] for r in view["refunds"]] == [refund["id"]]

    operator = new_key(db, settings, None, ("ops:read", "ops:write"))
    done = api.post(
        f"/ops/refunds/{refund['id']}/complete",
        json={"evidence": "paid back in cash at the box office, slip 4411"},
        headers=operator.headers(),
    )

    assert done.status_code == 200, done.text
    assert done.json()["status"] == "succeeded"
    assert balance_of(db, merchant.id, "AMD") == (200_000, 0)
    assert ledger_sum(db, merchant.id, "refund") == -100_000
    assert ledger_sum(db, merchant.id) == 200_000
    after = view_of(api, merchant, payment_id)
    assert (after["refund_status"], after["refunded"]) == ("partial", 100_000)
    row = transfer_row(db, refund["id"])
    assert row.completed_by is not None
    assert row.completed_by.startswith("key:")
    assert audit_actions(db, refund["id"]) == [
        "refund.requested",
        "refund.completed_by_operator",
    ]
    # Completing it again is refused: it is no longer waiting.
    again = api.post(
        f"/ops/refunds/{refund['id']}/complete",
        json={"evidence": "twice"},
        headers=operator.headers(),
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "transfer_not_actionable"


def test_the_cli_completes_the_rest_and_the_payment_is_fully_refunded(
    api: ApiClient,
    merchant: HostedMerchant,
    fastshift: FastShiftSimulator,
    db: Database,
    settings: Settings,
    test_env: dict[str, str],
) -> None:
    payment_id = paid_payment(api, merchant, fastshift, db)
    key = new_key(db, settings, merchant.id)
    refund = request_refund(api, key, payment_id).json()  # no amount: all of it
    assert refund["amount"] == 300_000

    listed = subprocess.run(
        [sys.executable, "-m", "shared.cli", "refund", "list"],
        env=test_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert refund["id"] in listed.stdout
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared.cli",
            "refund",
            "complete",
            refund["id"],
            "--evidence",
            "bank transfer ref AM-7781",
            "--operator",
            "anna",
        ],
        env=test_env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert json.loads(completed.stdout)["status"] == "succeeded"
    assert view_of(api, merchant, payment_id)["refund_status"] == "full"
    assert balance_of(db, merchant.id, "AMD") == (0, 0)
    assert transfer_row(db, refund["id"]).completed_by == "anna"
    # Nothing is left to refund.
    more = request_refund(api, key, payment_id, amount=1)
    assert more.status_code == 422
    assert more.json()["error"]["code"] == "refund_exceeds_payment"
    assert more.json()["error"]["refundable"] == 0


def test_refusals_carry_their_codes(
    api: ApiClient,
    merchant: HostedMerchant,
    fastshift: FastShiftSimulator,
    db: Database,
    settings: Settings,
) -> None:
    payment_id = paid_payment(api, merchant, fastshift, db)
    key = new_key(db, settings, merchant.id)

    too_much = request_refund(api, key, payment_id, amount=300_001)
    assert too_much.status_code == 422
    assert too_much.json()["error"] == {
        "code": "refund_exceeds_payment",
        "message": "300000 minor units of the payment are left to refund",
        "refundable": 300_000,
    }
    no_scope = request_refund(api, merchant, payment_id, amount=100)  # payments scopes only
    assert no_scope.status_code == 403
    unpaid, _ = start_payment(api, merchant, amount_drams=3100)
    next_action(api, merchant, unpaid)
    not_paid = request_refund(api, key, unpaid, amount=100)
    assert not_paid.status_code == 409
    assert not_paid.json()["error"]["code"] == "payment_not_refundable"
    bad = api.post(
        f"/v1/payments/{payment_id}/refunds",
        json={"amount": -5, "reason": "x"},
        headers=key.headers("k-bad"),
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_amount"

    # The same key answers the same refund; another body under it is a conflict.
    first = api.post(
        f"/v1/payments/{payment_id}/refunds",
        json={"amount": 500, "reason": "damaged"},
        headers=key.headers("k-1"),
    )
    again = api.post(
        f"/v1/payments/{payment_id}/refunds",
        json={"amount": 500, "reason": "damaged"},
        headers=key.headers("k-1"),
    )
    other = api.post(
        f"/v1/payments/{payment_id}/refunds",
        json={"amount": 600, "reason": "damaged"},
        headers=key.headers("k-1"),
    )
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert balance_of(db, merchant.id, "AMD") == (300_000 - 500, 500)


def test_two_operators_completing_at_once_settle_it_once(
    api: ApiClient,
    merchant: HostedMerchant,
    fastshift: FastShiftSimulator,
    db: Database,
    settings: Settings,
) -> None:
    payment_id = paid_payment(api, merchant, fastshift, db)
    key = new_key(db, settings, merchant.id)
    refund = request_refund(api, key, payment_id, amount=50_000).json()
    operator = new_key(db, settings, None, ("ops:read", "ops:write"))

    def complete(paid: bool) -> int:
        with ApiClient(api.base_url) as own:
            return own.post(
                f"/ops/refunds/{refund['id']}/complete",
                json={"evidence": f"paid={paid} at the desk", "paid": paid},
                headers=operator.headers(),
            ).status_code

    with ThreadPoolExecutor(2) as pool:
        answers = sorted(pool.map(complete, [True, False]))

    assert answers == [200, 409]
    final = transfer_row(db, refund["id"]).status
    assert final in ("succeeded", "failed")
    available, held = balance_of(db, merchant.id, "AMD")
    assert held == 0
    assert available == 300_000 - (50_000 if final == "succeeded" else 0)
    assert ledger_sum(db, merchant.id) == available


def test_one_key_for_two_payments_at_once_is_one_refund_and_one_conflict(
    api: ApiClient,
    merchant: HostedMerchant,
    fastshift: FastShiftSimulator,
    db: Database,
    settings: Settings,
) -> None:
    first = paid_payment(api, merchant, fastshift, db)
    second = paid_payment(api, merchant, fastshift, db)
    key = new_key(db, settings, merchant.id)

    def refund(payment_id: str) -> int:
        with ApiClient(api.base_url) as own:
            return own.post(
                f"/v1/payments/{payment_id}/refunds",
                json={"amount": 1_000, "reason": "same key"},
                headers=key.headers("one-key-two-payments"),
            ).status_code

    with ThreadPoolExecutor(2) as pool:
        answers = sorted(pool.map(refund, [first, second]))

    assert answers == [202, 409]
