"""The IntaSend simulator's money out: chargebacks and send-money, their scenarios,
webhooks with the challenge, and the witness of money moved."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest

from sandbox.config import SimulatorConfig
from sandbox.intasend import IntaSendSimulator, create_simulator
from sandbox.intasend.accounts import BUILTIN_CHALLENGE, BUILTIN_PUBLISHABLE_KEY, BUILTIN_SECRET_KEY
from sandbox.intasend.settings import IntaSendSimSettings
from tests.sandbox.helpers import WAIT_S, CallbackReceiver

AUTH = {"Authorization": f"Bearer {BUILTIN_SECRET_KEY}"}
DELAY_S = 0.2
API = "/api/v1"


class Sim:
    def __init__(self, sim: IntaSendSimulator) -> None:
        self.sim = sim
        self.client = falcon.testing.TestClient(sim.app)

    def post(self, path: str, body: Any, auth: bool = True) -> falcon.testing.Result:
        return self.client.simulate_post(f"{API}/{path}", json=body, headers=AUTH if auth else {})

    def get(self, path: str) -> falcon.testing.Result:
        return self.client.simulate_get(f"{API}/{path}", headers=AUTH)

    def control(self, method: str, path: str, body: Any = None) -> falcon.testing.Result:
        return self.client.simulate_request(method, f"/_sim{path}", json=body)

    def paid_invoice(self, amount: str = "100.00") -> str:
        pushed = self.post(
            "payment/mpesa-stk-push/",
            {
                "currency": "KES",
                "method": "M-PESA",
                "amount": amount,
                "phone_number": "254712345678",
            },
        )
        invoice_id = str(pushed.json["invoice"]["invoice_id"])
        wait_until(lambda: self.invoice_state(invoice_id) == "COMPLETE")
        return invoice_id

    def invoice_state(self, invoice_id: str) -> str:
        return str(self.control("GET", f"/invoices/{invoice_id}").json["invoice"]["state"])

    def chargeback(self, invoice: str, amount: str, ref: str = "ref-1") -> falcon.testing.Result:
        body = {"invoice": invoice, "amount": amount, "reason": "Returned", "reason_details": ref}
        return self.post("chargebacks/", body)

    def initiate(
        self, ref: str = "ref-p", approval: str = "NO", **changes: Any
    ) -> falcon.testing.Result:
        transaction = {"account": "254712345678", "amount": "50", "idempotency_key": ref}
        body = {
            "provider": "MPESA-B2C",
            "currency": "KES",
            "transactions": [{**transaction, **changes.pop("transaction", {})}],
            "requires_approval": approval,
            **changes,
        }
        return self.post("send-money/initiate/", body)

    def witness(self, ref: str) -> dict[str, Any]:
        found = [
            t
            for t in self.control("GET", "/transfers").json["transfers"]
            if t["request_ref"] == ref
        ]
        assert len(found) == 1, found
        return found[0]


def wait_until(condition: Any, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def sim() -> Iterator[Sim]:
    built = create_simulator(
        SimulatorConfig(callback_delay_s=DELAY_S), IntaSendSimSettings(retry_delays_s=(0.05,))
    )
    yield Sim(built)
    built.close()


def test_a_chargeback_completes_after_the_delay_and_moves_money_once(sim: Sim) -> None:
    invoice = sim.paid_invoice()

    created = sim.chargeback(invoice, "40.00")

    assert created.status_code == 201
    chargeback = created.json
    assert (chargeback["status"], chargeback["reason_details"], chargeback["invoice"]) == (
        "PENDING",
        "ref-1",
        invoice,
    )
    wait_until(lambda: sim.get(f"chargebacks/{chargeback['id']}/").json["status"] == "COMPLETED")
    listed = sim.get("chargebacks/").json
    assert (listed["count"], listed["next"], listed["results"][0]["id"]) == (
        1,
        None,
        chargeback["id"],
    )
    witness = sim.witness("ref-1")
    assert (witness["kind"], witness["times_moved"], witness["gateway_refs"]) == (
        "refund",
        1,
        [chargeback["id"]],
    )


def test_a_chargeback_is_refused_above_what_is_left_or_on_an_unpaid_invoice(sim: Sim) -> None:
    invoice = sim.paid_invoice()
    assert sim.chargeback(invoice, "70.00").status_code == 201

    refused = sim.chargeback(invoice, "30.01", "ref-2")

    assert refused.status_code == 400
    assert refused.json["errors"][0]["attr"] == "amount"
    assert sim.chargeback(invoice, "30.00", "ref-3").status_code == 201
    assert sim.chargeback("NOSUCH", "1.00").status_code == 404
    assert sim.post("chargebacks/", {"invoice": invoice}, auth=False).status_code == 401


def test_a_cancelled_chargeback_gives_its_amount_back_to_what_is_left(sim: Sim) -> None:
    invoice = sim.paid_invoice()
    sim.control("POST", "/transfer-scenarios", {"match": {"invoice": invoice}, "outcome": "cancel"})
    chargeback = sim.chargeback(invoice, "100.00").json

    wait_until(lambda: sim.get(f"chargebacks/{chargeback['id']}/").json["status"] == "CANCELLED")

    sim.control("DELETE", "/transfer-scenarios")
    assert sim.chargeback(invoice, "100.00", "ref-2").status_code == 201
    assert sim.witness("ref-1")["times_moved"] == 0


def test_the_chargeback_webhook_goes_to_the_dashboard_url_with_the_challenge(
    sim: Sim, receiver: CallbackReceiver
) -> None:
    body = {
        "public_key": BUILTIN_PUBLISHABLE_KEY,
        "url": receiver.url,
        "challenge": BUILTIN_CHALLENGE,
    }
    sim.control("POST", "/webhooks", body)
    invoice = sim.paid_invoice()
    before = len(receiver.received)
    sim.control("POST", "/transfer-scenarios", {"match": {"invoice": invoice}, "webhook": "twice"})

    chargeback = sim.chargeback(invoice, "10.00").json

    received = receiver.wait_for(before + 2)[before:]
    assert [r.body["chargeback_id"] for r in received] == [chargeback["id"]] * 2
    first = received[0].body
    assert (first["status"], first["challenge"], first["invoice"]["invoice_id"]) == (
        "COMPLETED",
        BUILTIN_CHALLENGE,
        invoice,
    )


def test_send_money_without_approval_is_sent_and_posts_its_result(
    sim: Sim, receiver: CallbackReceiver
) -> None:
    started = sim.initiate(callback_url=f"{receiver.url}/xr-ref-p")

    assert started.status_code == 200
    batch = started.json
    assert (batch["status_code"], batch["transactions"][0]["status_code"]) == ("BP110", "TP102")
    [result] = receiver.wait_for(1)
    assert result.path.endswith("/xr-ref-p")
    assert (result.body["status_code"], result.body["challenge"]) == ("BC100", BUILTIN_CHALLENGE)
    transaction = result.body["transactions"][0]
    assert (transaction["status_code"], transaction["idempotency_key"]) == ("TS100", "ref-p")
    assert transaction["provider_reference"]
    status = sim.post("send-money/status/", {"tracking_id": batch["tracking_id"]}).json
    assert status["transactions"][0]["status"] == "Successful"
    assert sim.witness("ref-p")["times_moved"] == 1


def test_send_money_awaiting_approval_moves_only_once_approved_with_its_nonce(sim: Sim) -> None:
    batch = sim.initiate(approval="YES").json
    assert batch["status_code"] == "BP103"
    time.sleep(DELAY_S * 2)
    assert sim.witness("ref-p")["times_moved"] == 0

    wrong = sim.post("send-money/approve/", {"tracking_id": batch["tracking_id"], "nonce": "x"})
    assert wrong.status_code == 400
    approved = sim.post("send-money/approve/", batch)
    assert approved.status_code == 200
    assert sim.post("send-money/approve/", batch).status_code == 400  # once only

    tracking = {"tracking_id": batch["tracking_id"]}
    wait_until(lambda: sim.post("send-money/status/", tracking).json["status_code"] == "BC100")
    assert sim.witness("ref-p")["times_moved"] == 1


def test_a_known_idempotency_key_is_refused_and_moves_nothing_more(sim: Sim) -> None:
    assert sim.initiate().status_code == 200

    again = sim.initiate()

    assert again.status_code == 400
    assert again.json["errors"][0]["attr"] == "idempotency_key"
    wait_until(lambda: sim.witness("ref-p")["times_moved"] == 1)
    assert len(sim.witness("ref-p")["gateway_refs"]) == 1


@pytest.mark.parametrize(
    ("outcome", "batch_code", "code"),
    [("fail", "BC100", "TF106"), ("float_low", "BF105", "TP101")],
)
def test_failing_payout_scenarios(sim: Sim, outcome: str, batch_code: str, code: str) -> None:
    scenario = {"match": {"phone": "254712345678"}, "kind": "payout", "outcome": outcome}
    assert sim.control("POST", "/transfer-scenarios", scenario).status_code == 201
    batch = sim.initiate().json
    tracking = {"tracking_id": batch["tracking_id"]}

    wait_until(lambda: sim.post("send-money/status/", tracking).json["status_code"] == batch_code)

    assert sim.post("send-money/status/", tracking).json["transactions"][0]["status_code"] == code
    assert sim.witness("ref-p")["times_moved"] == 0


def test_an_injected_error_makes_nothing_and_bad_requests_are_refused(sim: Sim) -> None:
    scenario = {"match": {"amount": 50}, "kind": "payout", "error": {"status": 503}}
    sim.control("POST", "/transfer-scenarios", scenario)

    assert sim.initiate().status_code == 503
    assert sim.control("GET", "/transfers").json["transfers"] == []
    assert (
        sim.initiate(transaction={"account": "0712345678"}).json["errors"][0]["attr"] == "account"
    )
    assert sim.initiate(transaction={"amount": "5"}).json["errors"][0]["attr"] == "amount"
    bad = sim.control("POST", "/transfer-scenarios", {"match": {"phone": "1"}, "outcome": "??"})
    assert bad.status_code == 400
    sim.control("POST", "/reset")
    assert sim.control("GET", "/transfer-scenarios").json == []
