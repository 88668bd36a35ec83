"""Money out in the Daraja simulator: Reversal, B2C v3, Transaction Status and the witness."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding

from sandbox.config import SimulatorConfig
from sandbox.daraja import Simulator, create_simulator
from sandbox.daraja.initiator import BUILTIN_INITIATORS
from shared.gateways.daraja.initiator import public_key_of, security_credential
from tests.sandbox.helpers import (
    FAST_DELAY_S,
    PHONE,
    SHORTCODE,
    CallbackReceiver,
    Daraja,
    settle,
    wait_until,
)

INITIATOR, PASSWORD = next(iter(BUILTIN_INITIATORS.items()))
RECIPIENT = "254712000111"


class MoneyOut:
    """The simulator's money-out endpoints, results sent to ``receiver``."""

    def __init__(self, daraja: Daraja, receiver: CallbackReceiver) -> None:
        self.daraja = daraja
        self.receiver = receiver
        self.key = public_key_of(daraja.sim.keys.certificate_pem)

    def credential(self, password: str = PASSWORD) -> str:
        return security_credential(password, self.key)

    def urls(self, ref: str) -> dict[str, str]:
        return {
            "ResultURL": f"{self.receiver.url}/xr-{ref}",
            "QueueTimeOutURL": f"{self.receiver.url}/xt-{ref}",
        }

    def b2c(self, ref: str | None = None, **overrides: Any) -> Any:
        ref = ref or uuid.uuid4().hex
        body = {
            "OriginatorConversationID": ref,
            "InitiatorName": INITIATOR,
            "SecurityCredential": self.credential(),
            "CommandID": "BusinessPayment",
            "Amount": 100,
            "PartyA": SHORTCODE,
            "PartyB": RECIPIENT,
            "Remarks": "Payout",
            "Occassion": "test",
            **self.urls(ref),
            **overrides,
        }
        return self.daraja.post("/mpesa/b2c/v3/paymentrequest", body)

    def reversal(self, receipt: str, ref: str | None = None, **overrides: Any) -> Any:
        ref = ref or uuid.uuid4().hex
        body = {
            "OriginatorConversationID": ref,
            "Initiator": INITIATOR,
            "SecurityCredential": self.credential(),
            "CommandID": "TransactionReversal",
            "TransactionID": receipt,
            "Amount": 10,
            "ReceiverParty": SHORTCODE,
            "RecieverIdentifierType": "11",
            "Remarks": "Refund",
            "Occasion": "test",
            **self.urls(ref),
            **overrides,
        }
        return self.daraja.post("/mpesa/reversal/v1/request", body)

    def status(self, ref: str, **overrides: Any) -> Any:
        body = {
            "Initiator": INITIATOR,
            "SecurityCredential": self.credential(),
            "CommandID": "TransactionStatusQuery",
            "OriginalConversationID": ref,
            "PartyA": SHORTCODE,
            "IdentifierType": "4",
            "Remarks": "Transfer status",
            "Occasion": "test",
            **self.urls(ref),
            **overrides,
        }
        return self.daraja.post("/mpesa/transactionstatus/v1/query", body)

    def transfers(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.daraja.control("GET", "/transfers").json["transfers"]
        return result

    def scenario(self, **document: Any) -> None:
        result = self.daraja.control("POST", "/transfers/scenarios", document)
        assert result.status_code == 201, result.json

    def paid_receipt(self, amount: int = 10) -> str:
        """An STK collection that succeeded, by its receipt."""
        checkout_id = self.daraja.accepted(Amount=amount)
        self.receiver.wait_for(1)  # its STK callback, forgotten: results are counted after
        with self.receiver.cond:
            self.receiver.received.clear()
        transaction = self.daraja.control("GET", f"/transactions/{checkout_id}").json
        return str(transaction["MpesaReceiptNumber"])


@pytest.fixture
def money(daraja: Daraja, receiver: CallbackReceiver) -> MoneyOut:
    return MoneyOut(daraja, receiver)


def result_of(received: Any) -> dict[str, Any]:
    result: dict[str, Any] = received.body["Result"]
    return result


def parameters(result: dict[str, Any]) -> dict[str, Any]:
    return {p["Key"]: p.get("Value") for p in result["ResultParameters"]["ResultParameter"]}


def test_a_b2c_payout_is_acknowledged_then_its_result_posted(money: MoneyOut) -> None:
    ref = uuid.uuid4().hex

    ack = money.b2c(ref)

    assert ack.status_code == 200
    assert ack.json["ResponseCode"] == "0"
    assert ack.json["OriginatorConversationID"] == ref
    assert ack.json["ConversationID"].startswith("AG_")
    [received] = money.receiver.wait_for(1)
    assert received.path.endswith(f"/xr-{ref}")
    result = result_of(received)
    assert (result["ResultCode"], result["OriginatorConversationID"]) == (0, ref)
    assert result["ConversationID"] == ack.json["ConversationID"]
    params = parameters(result)
    assert params["TransactionAmount"] == 100
    assert params["TransactionReceipt"] == result["TransactionID"]
    [transfer] = money.transfers()
    assert transfer["kind"] == "b2c"
    assert transfer["originator_conversation_id"] == ref
    assert (transfer["amount"], transfer["party"], transfer["made"]) == (100, RECIPIENT, 1)
    assert transfer["receipt"] == params["TransactionReceipt"]
    wait_until(lambda: len(money.transfers()[0]["deliveries"]) == 1)


def test_a_wrong_initiator_password_is_result_2001_and_moves_nothing(money: MoneyOut) -> None:
    ack = money.b2c(SecurityCredential=money.credential("not-the-password"))

    assert ack.status_code == 200
    [received] = money.receiver.wait_for(1)
    assert result_of(received)["ResultCode"] == 2001
    assert result_of(received)["ResultDesc"] == "The initiator information is invalid."
    assert "ResultParameters" not in result_of(received)
    assert money.transfers()[0]["made"] == 0


@pytest.mark.parametrize(
    "credential",
    [
        "not base64 at all!",
        base64.b64encode(b"x" * 256).decode(),
    ],
)
def test_a_credential_not_encrypted_for_the_certificate_is_refused(
    money: MoneyOut, credential: str
) -> None:
    money.b2c(SecurityCredential=credential)

    [received] = money.receiver.wait_for(1)
    assert result_of(received)["ResultCode"] == 2001


def test_an_unknown_initiator_is_refused(money: MoneyOut) -> None:
    money.b2c(InitiatorName="someone-else")

    [received] = money.receiver.wait_for(1)
    assert result_of(received)["ResultCode"] == 2001


def test_a_reused_originator_id_is_refused_and_the_money_moves_once(money: MoneyOut) -> None:
    ref = uuid.uuid4().hex
    assert money.b2c(ref).status_code == 200

    again = money.b2c(ref, Amount=200)

    assert again.status_code == 500
    assert again.json["errorCode"] == "500.002.1001"
    [transfer] = money.transfers()
    assert (transfer["amount"], transfer["made"]) == (100, 1)
    money.receiver.wait_for(1)
    settle(FAST_DELAY_S * 4)
    assert len(money.receiver.received) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("OriginatorConversationID", None),
        ("CommandID", "TransactionReversal"),
        ("Amount", 10.5),
        ("PartyA", "12"),
        ("PartyB", "0712345678"),
        ("Remarks", "x"),
        ("ResultURL", "ftp://nowhere"),
        ("QueueTimeOutURL", "https://example.com/mpesa"),
    ],
)
def test_b2c_fields_are_checked(money: MoneyOut, field: str, value: Any) -> None:
    result = money.b2c(**{field: value})

    assert result.status_code == 400
    assert result.json["errorMessage"] == f"Bad Request - Invalid {field}"
    assert money.transfers() == []


def test_an_amount_below_the_b2c_minimum_fails_in_the_result(money: MoneyOut) -> None:
    money.b2c(Amount=9)

    [received] = money.receiver.wait_for(1)
    assert result_of(received)["ResultCode"] == 2
    assert money.transfers()[0]["made"] == 0


def test_scenarios_choose_the_code_by_party_before_amount(money: MoneyOut) -> None:
    money.scenario(match={"amount": 100}, result_code=1)
    money.scenario(match={"party": RECIPIENT}, result_code=2040)

    money.b2c()
    money.b2c(PartyB="254712000222")

    received = money.receiver.wait_for(2)
    codes = sorted(result_of(r)["ResultCode"] for r in received)
    assert codes == [1, 2040]
    assert [t["made"] for t in money.transfers()] == [0, 0]


def test_a_string_result_code_is_sent_as_a_string(money: MoneyOut) -> None:
    money.scenario(match={"party": RECIPIENT}, result_code="SFC_IC0003")

    money.b2c()

    assert result_of(money.receiver.wait_for(1)[0])["ResultCode"] == "SFC_IC0003"


def test_a_result_sent_twice_is_the_same_document(money: MoneyOut) -> None:
    money.scenario(match={"party": RECIPIENT}, result="twice")

    money.b2c()

    first, second = money.receiver.wait_for(2)
    assert first.body == second.body
    assert money.transfers()[0]["made"] == 1
    wait_until(lambda: len(money.transfers()[0]["deliveries"]) == 2)


def test_a_result_never_sent(money: MoneyOut) -> None:
    money.scenario(match={"party": RECIPIENT}, result="none")

    assert money.b2c().status_code == 200

    settle(FAST_DELAY_S * 6)
    assert money.receiver.received == []
    assert money.transfers()[0]["made"] == 1


def test_a_queue_timeout_goes_to_the_timeout_url_and_moves_nothing(money: MoneyOut) -> None:
    ref = uuid.uuid4().hex
    money.scenario(match={"party": RECIPIENT}, result="timeout")

    money.b2c(ref)

    [received] = money.receiver.wait_for(1)
    assert received.path.endswith(f"/xt-{ref}")
    assert money.transfers()[0]["made"] == 0


def test_a_result_delay_is_kept(money: MoneyOut) -> None:
    money.scenario(match={"party": RECIPIENT}, result_delay_s=0.6)

    money.b2c()

    settle(0.3)
    assert money.receiver.received == []
    money.receiver.wait_for(1)


def test_an_injected_ack_error_makes_nothing(money: MoneyOut) -> None:
    busy = {"status": 500, "errorCode": "500.003.02", "errorMessage": "Spike Arrest", "times": 1}
    money.scenario(match={"party": RECIPIENT}, ack_error=busy)

    first, second = money.b2c(), money.b2c()

    assert (first.status_code, first.json["errorCode"]) == (500, "500.003.02")
    assert second.status_code == 200
    assert len(money.transfers()) == 1


def test_a_reversal_gives_a_collection_back_once(money: MoneyOut) -> None:
    receipt = money.paid_receipt()
    ref = uuid.uuid4().hex

    ack = money.reversal(receipt, ref)
    again = money.reversal(receipt)  # another id, the same payment

    assert ack.status_code == again.status_code == 200
    received = money.receiver.wait_for(2)
    by_ref = {result_of(r)["OriginatorConversationID"]: result_of(r) for r in received}
    first = by_ref.pop(ref)
    [second] = by_ref.values()
    assert first["ResultCode"] == 0
    assert parameters(first)["OriginalTransactionID"] == receipt
    assert second["ResultCode"] == "R000001"
    made = {t["originator_conversation_id"]: t for t in money.transfers()}
    assert made[ref]["party"] == PHONE
    assert made[ref]["kind"] == "reversal"
    assert sum(t["made"] for t in made.values()) == 1


def test_partial_reversals_add_up_to_the_payment_and_never_beyond(money: MoneyOut) -> None:
    receipt = money.paid_receipt(amount=30)
    refs = [uuid.uuid4().hex for _ in range(4)]

    for ref in refs:
        assert money.reversal(receipt, ref, Amount=10).status_code == 200

    received = money.receiver.wait_for(4)
    codes = {result_of(r)["OriginatorConversationID"]: result_of(r)["ResultCode"] for r in received}
    assert sorted(codes.values(), key=str) == [0, 0, 0, "R000001"]
    made = [t for t in money.transfers() if t["originator_conversation_id"] in refs]
    assert sum(t["made"] * t["amount"] for t in made) == 30


def test_a_reversal_of_an_unknown_receipt_fails(money: MoneyOut) -> None:
    money.reversal("NOSUCH0001")

    [received] = money.receiver.wait_for(1)
    assert result_of(received)["ResultCode"] == "R000002"


def test_reversal_fields_are_checked(money: MoneyOut) -> None:
    result = money.reversal("NLJ7RT61SV", RecieverIdentifierType="4")

    assert result.status_code == 400
    assert result.json["errorMessage"] == "Bad Request - Invalid RecieverIdentifierType"


def test_the_status_query_answers_from_the_record(money: MoneyOut) -> None:
    ref = uuid.uuid4().hex
    money.b2c(ref)
    [result] = [result_of(r) for r in money.receiver.wait_for(1)]

    ack = money.status(ref)

    assert ack.status_code == 200
    assert ack.json["ResponseCode"] == "0"
    status = result_of(money.receiver.wait_for(2)[1])
    assert status["ResultCode"] == 0
    assert status["OriginatorConversationID"] != ref  # the query's own id
    params = parameters(status)
    assert params["TransactionStatus"] == "Completed"
    assert params["ReceiptNo"] == result["TransactionID"]
    assert params["ConversationID"] == result["ConversationID"]
    assert params["Amount"] == 100
    assert len(money.transfers()) == 1


def test_the_status_query_of_an_unknown_transfer_says_so(money: MoneyOut) -> None:
    money.status(uuid.uuid4().hex)

    [received] = money.receiver.wait_for(1)
    assert result_of(received)["ResultCode"] == "R000002"
    assert "ResultParameters" not in result_of(received)


def test_a_timed_out_transfer_is_not_found_by_the_status_query(money: MoneyOut) -> None:
    ref = uuid.uuid4().hex
    money.scenario(match={"party": RECIPIENT}, result="timeout")
    money.b2c(ref)
    money.receiver.wait_for(1)

    money.status(ref)

    assert result_of(money.receiver.wait_for(2)[1])["ResultCode"] == "R000002"


def test_the_status_query_checks_the_credential(money: MoneyOut) -> None:
    money.status(uuid.uuid4().hex, SecurityCredential=money.credential("wrong"))

    [received] = money.receiver.wait_for(1)
    assert result_of(received)["ResultCode"] == 2001


def test_the_certificate_is_served_and_written_where_asked(money: MoneyOut, tmp_path: Path) -> None:
    served = money.daraja.control("GET", "/certificate")
    target = tmp_path / "nested" / "daraja.pem"
    sim: Simulator = create_simulator(
        SimulatorConfig(), environ={"SANDBOX_DARAJA_CERTIFICATE_OUT": str(target)}
    )
    sim.close()

    assert served.status_code == 200
    assert served.content == money.daraja.sim.keys.certificate_pem
    assert x509.load_pem_x509_certificate(served.content).subject
    assert target.read_bytes() == sim.keys.certificate_pem
    assert (target.parent / "daraja.pem.key").stat().st_mode & 0o077 == 0  # the key is private


def test_a_later_simulator_keeps_the_certificate_written_before(tmp_path: Path) -> None:
    # Workers read the certificate once; a restarted (or second) sandbox must not change it.
    target = tmp_path / "daraja.pem"
    environ = {"SANDBOX_DARAJA_CERTIFICATE_OUT": str(target)}
    first: Simulator = create_simulator(SimulatorConfig(), environ=environ)
    first.close()
    written = target.read_bytes()

    second: Simulator = create_simulator(SimulatorConfig(), environ=environ)
    second.close()

    assert target.read_bytes() == written == second.keys.certificate_pem
    credential = base64.b64encode(
        x509.load_pem_x509_certificate(written)
        .public_key()
        .encrypt(b"malipo-sandbox-initiator-1", padding.PKCS1v15())  # type: ignore[union-attr]
    ).decode()
    assert second.keys.decrypt(credential) == "malipo-sandbox-initiator-1"


def test_reset_forgets_transfers_and_their_scenarios(money: MoneyOut) -> None:
    money.scenario(match={"party": RECIPIENT}, result_code=1)
    money.b2c()

    money.daraja.control("POST", "/reset")

    assert money.transfers() == []
    assert money.daraja.control("GET", "/transfers/scenarios").json == []
