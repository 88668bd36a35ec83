"""Refunds and payouts through Daraja (Reversal, B2C, Transaction Status), end to end.

The Daraja simulator keeps its own record of every transfer it made: that record,
not malipo's database, is the witness that money moved exactly once.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from shared.crypto import CredentialCipher
from shared.db.models import Transfer, WebhookEvent
from shared.db.session import Database
from shared.gateways import catalogue
from shared.settings import Settings
from tests.conftest import DARAJA_CREDENTIALS, ApiClient, MerchantAccount, make_merchant
from tests.integration.test_customer_notifications import SmsProvider
from tests.support.money_out import (
    audit_actions,
    balance_of,
    final_transfer,
    ledger_sum,
    new_key,
    request_payout,
    request_refund,
    set_payout_rules,
    transfer_row,
)
from tests.support.payments import final_view, view_of
from tests.support.sim import Simulator
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "ingress_server")]


def money_out_credentials() -> dict[str, str]:
    built_in = catalogue.describe("daraja").simulator_credentials
    return {
        **DARAJA_CREDENTIALS,
        "initiator_name": built_in["initiator_name"],
        "initiator_password": built_in["initiator_password"],
    }


@pytest.fixture
def merchant(
    db: Database, settings: Settings, cipher: CredentialCipher, sim: Simulator
) -> MerchantAccount:
    return make_merchant(db, settings, cipher, daraja=money_out_credentials())


def collect(api: ApiClient, merchant: MerchantAccount, amount: int, phone: str) -> str:
    response = api.post(
        "/v1/payments",
        json={
            "amount": amount,
            "currency": "KES",
            "phone": phone,
            "reference": f"ORD-{uuid.uuid4().hex[:8]}",
        },
        headers=merchant.headers(str(uuid.uuid4())),
    )
    assert response.status_code == 202, response.text
    payment_id = str(response.json()["id"])
    assert final_view(api, merchant, payment_id)["status"] == "succeeded"
    return payment_id


def witnessed(sim: Simulator) -> list[dict[str, Any]]:
    transfers: list[dict[str, Any]] = sim._call("GET", "/transfers")["transfers"]
    return transfers


def made_for(sim: Simulator, transfer_id: str) -> list[dict[str, Any]]:
    ref = uuid.UUID(transfer_id).hex
    return [t for t in witnessed(sim) if t["originator_conversation_id"] == ref]


def transfer_scenario(sim: Simulator, **scenario: Any) -> None:
    sim._call("POST", "/transfers/scenarios", json=scenario)


def webhook_types(db: Database, transfer_id: str) -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(WebhookEvent.event_type).where(
                    WebhookEvent.transfer_id == uuid.UUID(transfer_id)
                )
            )
        )


def test_a_refund_is_reversed_once_and_debited_once(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    payment_id = collect(api, merchant, 1000, "254712300001")
    key = new_key(db, settings, merchant.id)

    response = request_refund(api, key, payment_id, amount=400, reason="double charge")
    assert response.status_code == 202, response.text
    refund = final_transfer(api, key, "refund", response.json()["id"])

    assert refund["status"] == "succeeded", refund
    made = made_for(sim, refund["id"])
    assert [(t["kind"], t["amount"], t["made"]) for t in made] == [("reversal", 4, 1)]
    assert made[0]["original_transaction_id"] == view_of(api, merchant, payment_id)["receipt"]
    assert refund["receipt"] == made[0]["receipt"]
    assert balance_of(db, merchant.id, "KES") == (600, 0)
    assert ledger_sum(db, merchant.id, "refund") == -400
    view = view_of(api, merchant, payment_id)
    assert (view["refund_status"], view["refunded"]) == ("partial", 400)
    assert webhook_types(db, refund["id"]) == ["refund.succeeded"]
    assert audit_actions(db, refund["id"])[0] == "refund.requested"
    assert audit_actions(db, refund["id"])[-1] == "refund.succeeded"


def test_a_failed_reversal_releases_the_hold_and_the_payment(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    payment_id = collect(api, merchant, 1000, "254712300002")
    transfer_scenario(sim, match={"party": "254712300002"}, result_code="R000002")
    key = new_key(db, settings, merchant.id)

    refund_id = request_refund(api, key, payment_id, amount=1000).json()["id"]
    refund = final_transfer(api, key, "refund", refund_id)

    assert refund["status"] == "failed"
    assert refund["failure"]["code"]
    assert [t["made"] for t in made_for(sim, refund_id)] == [0]
    assert balance_of(db, merchant.id, "KES") == (1000, 0)
    assert view_of(api, merchant, payment_id)["refund_status"] == "none"
    assert webhook_types(db, refund_id) == ["refund.failed"]
    # Its reservation is given back: the whole payment can be refunded again.
    assert request_refund(api, key, payment_id, amount=1000).status_code == 202


def test_twenty_racing_partial_refunds_never_exceed_the_payment(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    payment_id = collect(api, merchant, 1000, "254712300003")
    key = new_key(db, settings, merchant.id)

    def refund(_: int) -> Any:
        with ApiClient(api.base_url) as own:
            return request_refund(own, key, payment_id, amount=100 if _ % 2 else 200)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(refund, range(20)))

    accepted = [a.json() for a in answers if a.status_code == 202]
    refused = [a.json()["error"]["code"] for a in answers if a.status_code != 202]
    assert sum(r["amount"] for r in accepted) <= 1000
    assert sum(r["amount"] for r in accepted) > 1000 - 200  # it filled up, not stopped early
    assert set(refused) == {"refund_exceeds_payment"}
    finals = [final_transfer(api, key, "refund", r["id"], timeout_s=60) for r in accepted]
    assert {f["status"] for f in finals} == {"succeeded"}
    reversed_total = 0
    for final in finals:
        made = made_for(sim, final["id"])
        assert [t["made"] for t in made] == [1], made
        reversed_total += made[0]["amount"] * 100
    assert reversed_total == sum(r["amount"] for r in accepted)
    assert view_of(api, merchant, payment_id)["refunded"] == reversed_total


def test_twenty_racing_payouts_never_take_the_balance_below_zero(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    collect(api, merchant, 10_000, "254712300004")
    key = new_key(db, settings, merchant.id)

    def payout(n: int) -> Any:
        with ApiClient(api.base_url) as own:
            return request_payout(own, key, amount=1_500, phone=f"2547123401{n:02d}")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(payout, range(20)))

    accepted = [a.json() for a in answers if a.status_code == 202]
    refused = [a.json()["error"] for a in answers if a.status_code != 202]
    assert len(accepted) == 6  # 6 x 1,500 of 10,000
    assert {e["code"] for e in refused} == {"insufficient_balance"}
    assert {e["available"] for e in refused} == {1_000}
    assert "1000" in refused[0]["message"]
    finals = [final_transfer(api, key, "payout", p["id"], timeout_s=60) for p in accepted]
    assert {f["status"] for f in finals} == {"succeeded"}
    for final in finals:
        assert [(t["kind"], t["made"]) for t in made_for(sim, final["id"])] == [("b2c", 1)]
    assert balance_of(db, merchant.id, "KES") == (1_000, 0)
    assert ledger_sum(db, merchant.id) == 1_000


@pytest.mark.usefixtures("scheduler_process")
def test_a_lost_b2c_result_is_finished_by_the_status_query(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    collect(api, merchant, 5_000, "254712300005")
    transfer_scenario(sim, match={"party": "254712399005"}, result="none")
    key = new_key(db, settings, merchant.id)

    payout_id = request_payout(api, key, amount=2_000, phone="254712399005").json()["id"]
    payout = final_transfer(api, key, "payout", payout_id, timeout_s=60)

    assert payout["status"] == "succeeded"
    made = made_for(sim, payout_id)
    assert [(t["made"], t["deliveries"]) for t in made] == [(1, [])]  # no result ever posted
    assert payout["receipt"] == made[0]["receipt"]
    queries = sim.requests("transactionstatus")
    assert queries, "no Transaction Status query finished the payout"
    assert transfer_row(db, payout_id).sends == 1  # asked, never sent again
    assert balance_of(db, merchant.id, "KES") == (3_000, 0)


@pytest.mark.usefixtures("scheduler_process")
def test_a_lost_reversal_result_is_finished_by_the_status_query(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    payment_id = collect(api, merchant, 2_000, "254712300006")
    transfer_scenario(sim, match={"party": "254712300006"}, result="none")
    key = new_key(db, settings, merchant.id)

    refund_id = request_refund(api, key, payment_id).json()["id"]
    refund = final_transfer(api, key, "refund", refund_id, timeout_s=60)

    assert refund["status"] == "succeeded"
    assert [t["made"] for t in made_for(sim, refund_id)] == [1]
    assert transfer_row(db, refund_id).sends == 1
    assert view_of(api, merchant, payment_id)["refund_status"] == "full"


def test_a_payout_above_the_threshold_waits_for_a_second_key(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    collect(api, merchant, 20_000, "254712300007")
    set_payout_rules(db, merchant.id, approval_above={"KES": 5_000})
    scopes = ("payouts:write", "payouts:approve", "payments:read")
    asker, approver = (
        new_key(db, settings, merchant.id, scopes),
        new_key(db, settings, merchant.id, scopes),
    )

    small = request_payout(api, asker, amount=5_000, phone="254712399071").json()
    big = request_payout(api, asker, amount=6_000, phone="254712399072").json()
    assert small["status"] == "pending"
    assert big["status"] == "awaiting_approval"
    assert balance_of(db, merchant.id, "KES")[1] >= 6_000  # held while it waits

    own = api.post(f"/v1/payouts/{big['id']}/approve", headers=asker.headers())
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "self_approval"
    assert made_for(sim, big["id"]) == []  # nothing sent before the second key said yes
    approved = api.post(f"/v1/payouts/{big['id']}/approve", headers=approver.headers())
    assert approved.status_code == 200, approved.text
    assert final_transfer(api, asker, "payout", big["id"])["status"] == "succeeded"
    assert [t["made"] for t in made_for(sim, big["id"])] == [1]

    third = request_payout(api, asker, amount=7_000, phone="254712399073").json()
    rejected = api.post(f"/v1/payouts/{third['id']}/reject", headers=approver.headers())
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["failure"]["code"] == "rejected_by_approver"
    assert made_for(sim, third["id"]) == []
    final_transfer(api, asker, "payout", small["id"])
    assert balance_of(db, merchant.id, "KES") == (20_000 - 5_000 - 6_000, 0)
    with db.transaction() as session:
        row_big = session.get(Transfer, uuid.UUID(big["id"]))
        assert row_big is not None
        assert row_big.decided_by is not None
        assert row_big.decided_by != row_big.requested_by
    assert "payout.approved" in audit_actions(db, big["id"])
    assert "payout.rejected" in audit_actions(db, third["id"])


def test_the_phone_a_payout_paid_gets_an_sms_where_the_merchant_asks(
    api: ApiClient,
    merchant: MerchantAccount,
    sim: Simulator,
    db: Database,
    settings: Settings,
    test_env: dict[str, str],
) -> None:
    collect(api, merchant, 5_000, "254712300008")
    set_payout_rules(db, merchant.id, notify_recipient=True)
    key = new_key(db, settings, merchant.id)
    sms = SmsProvider(test_env["MALIPO_SMS_BASE_URL"])

    told = request_payout(api, key, amount=2_500, phone="254712399081", reason="June commission")
    final_transfer(api, key, "payout", told.json()["id"])
    set_payout_rules(db, merchant.id)
    silent = request_payout(api, key, amount=1_000, phone="254712399082")
    final_transfer(api, key, "payout", silent.json()["id"])

    [message] = wait_until(
        lambda: sms.messages("+254712399081") or None, timeout_s=20, what="the payout SMS"
    )
    assert "received KES 25.00" in message["message"]
    assert "June commission" in message["message"]
    assert sms.messages("+254712399082") == []


@pytest.mark.usefixtures("scheduler_process")
def test_a_payout_whose_answer_timed_out_is_asked_about_never_sent_again(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    # Safaricom takes the B2C request, but its answer comes after malipo stopped waiting
    # (MALIPO_GATEWAY_READ_TIMEOUT_S is 3 s here): the outcome is unknown.
    collect(api, merchant, 5_000, "254712300009")
    transfer_scenario(sim, match={"party": "254712399091"}, ack_delay_s=5, result="none")
    key = new_key(db, settings, merchant.id)

    payout_id = request_payout(api, key, amount=2_000, phone="254712399091").json()["id"]
    payout = final_transfer(api, key, "payout", payout_id, timeout_s=60)

    assert payout["status"] == "succeeded"
    assert [t["made"] for t in made_for(sim, payout_id)] == [1]
    ref = uuid.UUID(payout_id).hex

    def sent() -> list[dict[str, Any]]:
        return [r for r in sim.requests("b2c") if r["body"].get("OriginatorConversationID") == ref]

    # The slow answer is recorded once it is given (after malipo stopped waiting).
    wait_until(lambda: sent() or None, timeout_s=15, what="the B2C request's record")
    assert len(sent()) == 1  # asked about, never sent again
    assert "payout.unknown" in audit_actions(db, payout_id)
    assert balance_of(db, merchant.id, "KES") == (3_000, 0)


def test_a_result_sent_twice_settles_once(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    collect(api, merchant, 5_000, "254712300010")
    transfer_scenario(sim, match={"party": "254712399101"}, result="twice")
    key = new_key(db, settings, merchant.id)

    payout_id = request_payout(api, key, amount=1_500, phone="254712399101").json()["id"]
    final_transfer(api, key, "payout", payout_id)

    [made] = made_for(sim, payout_id)
    wait_until(lambda: len(made_for(sim, payout_id)[0]["deliveries"]) >= 2, timeout_s=20)
    assert ledger_sum(db, merchant.id, "payout") == -1_500
    assert webhook_types(db, payout_id) == ["payout.succeeded"]
    assert balance_of(db, merchant.id, "KES") == (3_500, 0)
    assert made["made"] == 1


@pytest.mark.usefixtures("scheduler_process")
def test_a_send_interrupted_before_the_call_is_found_never_made_and_sent_once(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    # A worker claimed the payout (``sending``, committed) and died before calling Safaricom.
    collect(api, merchant, 5_000, "254712300011")
    set_payout_rules(db, merchant.id, approval_above={"KES": 1})  # held back, so no worker sends it
    key = new_key(db, settings, merchant.id)
    payout_id = request_payout(api, key, amount=2_000, phone="254712399111").json()["id"]
    with db.transaction() as session:
        claimed = session.get(Transfer, uuid.UUID(payout_id))
        assert claimed is not None
        claimed.status, claimed.sends = "sending", 1
        claimed.sent_at = claimed.next_check_at = datetime.now(UTC) - timedelta(minutes=1)

    payout = final_transfer(api, key, "payout", payout_id, timeout_s=60)

    # The sweep found it past its call's deadline, asked, heard "no such transfer", sent it.
    assert payout["status"] == "succeeded"
    assert [t["made"] for t in made_for(sim, payout_id)] == [1]
    actions = audit_actions(db, payout_id)
    assert actions.index("payout.unknown") < actions.index("payout.pending")
    assert transfer_row(db, payout_id).sends == 2
    assert balance_of(db, merchant.id, "KES") == (3_000, 0)


@pytest.mark.usefixtures("scheduler_process")
def test_an_already_reversed_answer_is_asked_about_before_the_refund_fails(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    # "Already reversed" may mean an earlier send of this very refund went through: the
    # word alone never fails a refund (that would give the money back twice); the
    # Transaction Status of this refund's own id decides.
    payment_id = collect(api, merchant, 1000, "254712300012")
    transfer_scenario(sim, match={"party": "254712300012"}, result_code="R000001")
    key = new_key(db, settings, merchant.id)

    refund_id = request_refund(api, key, payment_id, amount=1000).json()["id"]
    refund = final_transfer(api, key, "refund", refund_id, timeout_s=60)

    assert refund["status"] == "failed"
    actions = audit_actions(db, refund_id)
    assert actions.index("refund.unknown") < actions.index("refund.failed")
    ref = uuid.UUID(refund_id).hex
    asked = [
        r
        for r in sim.requests("transactionstatus")
        if r["body"].get("OriginalConversationID") == ref
    ]
    assert asked, "the refund failed without its own status being asked"
    assert [t["made"] for t in made_for(sim, refund_id)] == [0]
    assert balance_of(db, merchant.id, "KES") == (1000, 0)


def test_an_operator_settles_a_payout_the_gateway_left_undecided(
    api: ApiClient, merchant: MerchantAccount, sim: Simulator, db: Database, settings: Settings
) -> None:
    collect(api, merchant, 5_000, "254712300013")
    set_payout_rules(db, merchant.id, approval_above={"KES": 1})  # held back: no worker touches it
    key = new_key(db, settings, merchant.id)
    payout_id = request_payout(api, key, amount=2_000, phone="254712399131").json()["id"]
    with db.transaction() as session:
        stuck = session.get(Transfer, uuid.UUID(payout_id))
        assert stuck is not None
        stuck.status, stuck.sends = "unknown", 1
        stuck.next_check_at = datetime.now(UTC) + timedelta(hours=1)
    operator = new_key(db, settings, None, ("ops:read", "ops:write"))

    refused = api.post(
        f"/ops/refunds/{payout_id}/complete",
        json={"evidence": "M-Pesa portal: no such payment"},
        headers=operator.headers(),
    )
    done = api.post(
        f"/ops/payouts/{payout_id}/complete",
        json={"evidence": "M-Pesa portal: no such payment", "paid": False},
        headers=operator.headers(),
    )

    assert refused.status_code == 404  # a payout is not a refund
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "failed"
    assert balance_of(db, merchant.id, "KES") == (5_000, 0)  # released
    assert audit_actions(db, payout_id)[-1] == "payout.abandoned_by_operator"
    assert webhook_types(db, payout_id) == ["payout.failed"]
