"""A payment end to end: ingress → RabbitMQ → workers → Daraja simulator → callback → ledger."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.db.models import Balance, LedgerEntry, PaymentIntent
from shared.db.session import Database
from tests.conftest import ApiClient, MerchantAccount
from tests.support.payments import events, final_view, intent, ledger_total
from tests.support.rabbit import Rabbit
from tests.support.seed import SeededPayment, success_callback
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


def start_payment(
    api: ApiClient,
    merchant: MerchantAccount,
    phone: str = "0712345678",
    amount: int = 100,
    **extra: Any,
) -> str:
    body = {
        "amount": amount,
        "currency": "KES",
        "phone": phone,
        "reference": f"ORD-{uuid.uuid4().hex[:8]}",
        **extra,
    }
    response = api.post("/v1/payments", json=body, headers=merchant.headers(str(uuid.uuid4())))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_success_reaches_the_ledger_with_the_receipt(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database
) -> None:
    payment_id = start_payment(api, merchant, amount=1500)

    view = final_view(api, merchant, payment_id)

    assert view["status"] == "succeeded"
    assert view["receipt"]
    assert len(view["receipt"]) == 10
    assert view["failure"] is None
    assert view["phone"] == "2547****5678"
    with db.transaction() as session:
        entries = session.scalars(
            select(LedgerEntry).where(LedgerEntry.intent_id == uuid.UUID(payment_id))
        ).all()
        balance = session.get(Balance, (merchant.id, "KES"))
    assert [(e.amount_minor, e.gateway_txn_id) for e in entries] == [(1500, view["receipt"])]
    assert balance is not None
    assert balance.available_minor == 1500


@pytest.mark.parametrize(
    ("phone", "status", "code"),
    [
        ("254700001032", "cancelled", "cancelled_by_user"),
        ("254700001037", "expired", "customer_unreachable"),
        ("254708374149", "expired", "customer_unreachable"),
        ("254700000001", "failed", "insufficient_funds"),
        ("254700002001", "failed", "wrong_pin"),
        ("254700001019", "expired", "transaction_expired"),
        ("254700000017", "failed", "rule_limited"),
    ],
)
def test_each_failure_outcome_ends_with_its_catalogue_code(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    phone: str,
    status: str,
    code: str,
) -> None:
    payment_id = start_payment(api, merchant, phone=phone)

    view = final_view(api, merchant, payment_id)

    assert (view["status"], view["failure"]["code"]) == (status, code)
    assert view["failure"]["message"]
    assert view["receipt"] is None
    assert ledger_total(db, merchant) == 0


def test_a_callback_delivered_twice_credits_once(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, rabbit: Rabbit
) -> None:
    payment_id = start_payment(
        api, merchant, phone="254700009998", amount=700
    )  # the simulator sends it twice

    view = final_view(api, merchant, payment_id)
    checkout_id = str(intent(db, payment_id).gateway_ref)
    wait_until(lambda: len(accepted_copies(sim, checkout_id)) >= 2, what="second callback")
    sim.resend(checkout_id)  # and a third copy, for good measure
    wait_until(lambda: len(accepted_copies(sim, checkout_id)) >= 3, what="third callback")
    rabbit.wait_settled("callbacks")  # every copy the ingress accepted has been processed

    assert view["status"] == "succeeded"
    assert ledger_total(db, merchant) == 700
    assert [e.outcome for e in events(db, payment_id) if e.source == "callback"] == ["applied"]


def accepted_copies(sim: Simulator, checkout_id: str) -> list[dict[str, Any]]:
    """Deliveries of this payment's callback that the ingress acknowledged (so enqueued)."""
    return [
        c for c in sim.callbacks() if c["checkout_request_id"] == checkout_id and c["status"] == 200
    ]


def pushes(sim: Simulator, **match: str) -> list[dict[str, Any]]:
    """STK pushes the simulator processed (a 404.001.03 token refusal is not a push)."""
    return [
        r
        for r in sim.requests(kind="stkpush")
        if r["status"] != 404 and all(r["body"].get(k) == v for k, v in match.items())
    ]


def attempts(db: Database, payment_id: str) -> list[Any]:
    from shared.db.models import PaymentAttempt

    with db.transaction() as session:
        return list(
            session.scalars(
                select(PaymentAttempt)
                .where(PaymentAttempt.intent_id == uuid.UUID(payment_id))
                .order_by(PaymentAttempt.number)
            )
        )


def test_a_missing_callback_is_finished_by_polling(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database
) -> None:
    payment_id = start_payment(
        api, merchant, phone="254700009999", amount=300
    )  # success, no callback

    view = final_view(api, merchant, payment_id)

    assert view["status"] == "succeeded"
    assert view["receipt"] is None  # only a callback carries the receipt; the query does not
    assert [e.source for e in events(db, payment_id)] == ["query"]
    assert ledger_total(db, merchant) == 300
    assert sim.requests(kind="query")


def test_a_callback_after_the_query_settled_the_payment_brings_its_receipt(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database
) -> None:
    # Given a payment the STK query settled (a success without its M-Pesa receipt)
    payment_id = start_payment(api, merchant, phone="254700009999", amount=400)
    assert final_view(api, merchant, payment_id)["receipt"] is None
    settled = intent(db, payment_id)
    assert settled.gateway_ref is not None

    # When Daraja's callback for it arrives late, carrying the receipt
    late = success_callback(
        SeededPayment(settled.id, settled.gateway_ref, settled.amount_minor, settled.phone),
        receipt="RLATE00001",
    )
    answer = api.post(
        f"/callbacks/daraja/{merchant.callback_secret}",
        data=late,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200

    # Then the payment keeps it (a Reversal needs it), credited still once
    wait_until(
        lambda: intent(db, payment_id).receipt == "RLATE00001", timeout_s=20, what="the receipt"
    )
    assert api.get(f"/v1/payments/{payment_id}", headers=merchant.headers()).json()["receipt"] == (
        "RLATE00001"
    )
    assert ledger_total(db, merchant) == 400


def test_no_answer_within_the_window_expires_the_payment(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator
) -> None:
    sim.scenario(
        match={"phone": "254711000111"}, result_code=0, callback="none", callback_delay_s=600
    )
    payment_id = start_payment(api, merchant, phone="254711000111")

    view = final_view(api, merchant, payment_id, timeout_s=40)

    assert (view["status"], view["failure"]["code"]) == ("expired", "expired")


def test_a_late_success_after_local_expiry_is_honoured_and_flagged(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database
) -> None:
    sim.scenario(
        match={"phone": "254711000222"}, result_code=0, callback="once", callback_delay_s=16
    )
    payment_id = start_payment(api, merchant, phone="254711000222", amount=200)
    assert final_view(api, merchant, payment_id, timeout_s=40)["status"] == "expired"

    view = wait_until(
        lambda: (
            (v := api.get(f"/v1/payments/{payment_id}", headers=merchant.headers()).json())[
                "status"
            ]
            == "succeeded"
            and v
        ),
        timeout_s=30,
        what="the late success",
    )

    assert "late_success" in view["flags"]
    assert ledger_total(db, merchant) == 200


def test_a_retried_request_returns_the_same_id_and_creates_one_intent(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database
) -> None:
    key = str(uuid.uuid4())
    body = {"amount": 100, "currency": "KES", "phone": "0712000001", "reference": "ORD-RETRY-1"}

    first = api.post("/v1/payments", json=body, headers=merchant.headers(key))
    final_view(api, merchant, first.json()["id"])
    second = api.post(
        "/v1/payments", json={**body, "phone": "+254 712 000 001"}, headers=merchant.headers(key)
    )

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Location"] == f"/v1/payments/{first.json()['id']}"
    with db.transaction() as session:
        count = session.scalar(
            select(func.count())
            .select_from(PaymentIntent)
            .where(PaymentIntent.merchant_id == merchant.id)
        )
    assert count == 1
    assert len(pushes(sim, AccountReference="ORD-RETRY-1")) == 1


def test_the_same_key_with_a_different_body_is_an_idempotency_conflict(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator
) -> None:
    key = str(uuid.uuid4())
    body = {"amount": 100, "currency": "KES", "phone": "0712000002", "reference": "ORD-CONFLICT"}
    first = api.post("/v1/payments", json=body, headers=merchant.headers(key))
    final_view(api, merchant, first.json()["id"])

    second = api.post("/v1/payments", json={**body, "amount": 200}, headers=merchant.headers(key))

    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_conflict"


def test_a_second_payment_for_a_live_reference_is_a_duplicate(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator
) -> None:
    body = {"amount": 100, "currency": "KES", "phone": "0712000003", "reference": "ORD-ONCE"}
    first = api.post("/v1/payments", json=body, headers=merchant.headers(str(uuid.uuid4())))
    assert final_view(api, merchant, first.json()["id"])["status"] == "succeeded"

    second = api.post("/v1/payments", json=body, headers=merchant.headers(str(uuid.uuid4())))
    view = final_view(api, merchant, second.json()["id"])

    assert (view["status"], view["failure"]["code"]) == ("failed", "duplicate_payment")


def test_a_push_whose_answer_is_lost_is_never_sent_again(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database
) -> None:
    # The simulator answers after the client's 3 s read timeout, but processes the push.
    sim.scenario(match={"phone": "254711000333"}, result_code=0, push_delay_s=4, callback_delay_s=1)
    payment_id = start_payment(api, merchant, phone="254711000333", amount=900)

    view = final_view(api, merchant, payment_id, timeout_s=40)
    # The simulator records the push once it has answered it (after our client gave up).
    wait_until(lambda: pushes(sim, PhoneNumber="254711000333"), what="the push to be recorded")
    wait_until(
        lambda: attempts(db, payment_id)[-1].responded_at, what="the worker to record the timeout"
    )

    assert len(pushes(sim, PhoneNumber="254711000333")) == 1
    assert [a.status for a in attempts(db, payment_id)] == ["accepted"]
    assert view["status"] == "succeeded"  # matched by the attempt reference in its callback URL
    assert ledger_total(db, merchant) == 900


def test_a_busy_gateway_is_retried_until_it_accepts(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator
) -> None:
    sim.scenario(
        match={"phone": "254711000444"},
        result_code=0,
        push_error={
            "status": 500,
            "errorCode": "500.003.02",
            "errorMessage": "Spike Arrest Violation",
            "times": 2,
        },
    )
    payment_id = start_payment(api, merchant, phone="254711000444")

    view = final_view(api, merchant, payment_id, timeout_s=40)

    assert [p["status"] for p in pushes(sim, PhoneNumber="254711000444")] == [500, 500, 200]
    assert view["status"] == "succeeded"


def test_wrong_gateway_credentials_fail_the_payment_without_retrying(
    api: ApiClient, db: Database, settings: Any, cipher: Any, sim: Simulator
) -> None:
    from tests.conftest import DARAJA_CREDENTIALS, make_merchant

    account = make_merchant(
        db, settings, cipher, daraja={**DARAJA_CREDENTIALS, "passkey": "not-the-passkey"}
    )
    payment_id = start_payment(api, account, phone="254711000555")

    view = final_view(api, account, payment_id)

    assert (view["status"], view["failure"]["code"]) == ("failed", "gateway_configuration")
    assert len(pushes(sim, PhoneNumber="254711000555")) == 1


def test_a_tampered_callback_amount_is_flagged_and_not_credited(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database
) -> None:
    sim.scenario(match={"phone": "254711000666"}, result_code=0, amount_in_callback=1)
    payment_id = start_payment(api, merchant, phone="254711000666", amount=5000)

    wait_until(
        lambda: any(e.outcome == "mismatch" for e in events(db, payment_id)),
        what="mismatch recorded",
    )
    view = api.get(f"/v1/payments/{payment_id}", headers=merchant.headers()).json()

    assert "amount_mismatch" in view["flags"]
    assert ledger_total(db, merchant) in (0, 5000)  # never the tampered amount
    # The status query (authoritative) then finishes it with the intent's own amount.
    final = final_view(api, merchant, payment_id)
    assert final["status"] == "succeeded"
    assert ledger_total(db, merchant) == 5000
