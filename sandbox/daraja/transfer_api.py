"""Daraja's asynchronous money-out endpoints: Reversal, B2C v3 and Transaction Status.

Each valid request is acknowledged at once (``ResponseCode "0"``) and its result is
POSTed later to its ResultURL as ``{"Result": {...}}``, once, by the callback thread
the STK callbacks use. A SecurityCredential that does not decrypt to the initiator's
password is acknowledged too and answered with result 2001, as Daraja does; a reused
OriginatorConversationID is refused synchronously (``500.002.1001``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from typing import Final
from urllib.parse import urlsplit

import falcon

from sandbox.config import SimulatorConfig
from sandbox.daraja import ids
from sandbox.daraja.callbacks import CallbackDispatcher
from sandbox.daraja.gateway import _AuthorizedJsonResource, send_error, send_reply
from sandbox.daraja.initiator import InitiatorKeys, credential_matches
from sandbox.daraja.results import ResultCode
from sandbox.daraja.state import SimulatorState
from sandbox.daraja.transfer_state import (
    UNKNOWN_ORIGINAL,
    WRONG_CREDENTIAL,
    Transfer,
    TransferBook,
    TransferKind,
    TransferOutcome,
    TransferScenarios,
    describe_transfer,
)
from sandbox.daraja.validation import FORBIDDEN_CALLBACK_WORDS, InvalidField, shortcode_field

ACK_DESCRIPTION: Final = "Accept the service request successfully."
DUPLICATE_CODE: Final = "500.002.1001"
DUPLICATE_MESSAGE: Final = "Duplicate OriginatorConversationID."
B2C_COMMANDS: Final = frozenset({"SalaryPayment", "BusinessPayment", "PromotionPayment"})
B2C_MIN, B2C_MAX = 10, 250_000
QUEUE_TIMEOUT_DESC: Final = "The request timed out in the queue and was not processed."
_MSISDN = re.compile(r"254[71][0-9]{8}")
_WHITESPACE = re.compile(r"\s")

Sleep = Callable[[float], None]


# -- field rules ----------------------------------------------------------------------------


def _string(body: Mapping[str, object], name: str, max_length: int = 100) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidField(name)
    return value


def _remarks(body: Mapping[str, object]) -> str:
    value = _string(body, "Remarks")
    if len(value) < 2:
        raise InvalidField("Remarks")
    return value


def _whole_amount(body: Mapping[str, object]) -> int:
    value = body.get("Amount")
    if isinstance(value, bool):
        raise InvalidField("Amount")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or value < 1:
        raise InvalidField("Amount")
    return value


def _url(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or _WHITESPACE.search(value):
        raise InvalidField(name)
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        raise InvalidField(name) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidField(name)
    if any(word in value.lower() for word in FORBIDDEN_CALLBACK_WORDS):
        raise InvalidField(name)
    return value


def _msisdn(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _MSISDN.fullmatch(text):
        raise InvalidField(name)
    return text


def _optional_id(body: Mapping[str, object], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 100:
        raise InvalidField(name)
    return value


# -- result documents -----------------------------------------------------------------------


def _parameters(items: Mapping[str, object]) -> dict[str, object]:
    return {"ResultParameter": [{"Key": k, "Value": v} for k, v in items.items()]}


def _envelope(
    code: ResultCode,
    desc: str,
    originator_id: str,
    conversation_id: str,
    transaction_id: str | None,
    timeout_url: str,
    parameters: Mapping[str, object] | None = None,
) -> dict[str, object]:
    result: dict[str, object] = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": desc,
        "OriginatorConversationID": originator_id,
        "ConversationID": conversation_id,
        "TransactionID": transaction_id or ids.receipt_number(),
    }
    if parameters:
        result["ResultParameters"] = _parameters(parameters)
    result["ReferenceData"] = {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": timeout_url}}
    return {"Result": result}


def _completed_at(transfer: Transfer) -> str:
    return (ids.nairobi_now() + timedelta(seconds=transfer.outcome.delay_s)).strftime(
        "%d.%m.%Y %H:%M:%S"
    )


def transfer_result_body(transfer: Transfer) -> dict[str, object]:
    """The ``{"Result": ...}`` a Reversal or B2C result POST carries."""
    outcome = transfer.outcome
    parameters: dict[str, object] | None = None
    if outcome.succeeded and transfer.kind == "b2c":
        parameters = {
            "TransactionAmount": transfer.amount,
            "TransactionReceipt": transfer.receipt,
            "B2CRecipientIsRegisteredCustomer": "Y",
            "B2CChargesPaidAccountAvailableFunds": 0.00,
            "ReceiverPartyPublicName": f"{transfer.party} - Sandbox Customer",
            "TransactionCompletedDateTime": _completed_at(transfer),
            "B2CUtilityAccountAvailableFunds": 500000.00,
            "B2CWorkingAccountAvailableFunds": 900000.00,
        }
    elif outcome.succeeded:
        parameters = {
            "DebitAccountBalance": "Utility Account|KES|500000.00|500000.00|0.00|0.00",
            "Amount": float(transfer.amount),
            "TransCompletedTime": int(ids.nairobi_now().strftime("%Y%m%d%H%M%S")),
            "OriginalTransactionID": transfer.original_transaction_id,
            "Charge": 0.00,
            "CreditPartyPublicName": f"{transfer.party} - Sandbox Customer",
            "DebitPartyPublicName": f"{transfer.shortcode} - Sandbox Merchant",
        }
    return _envelope(
        outcome.result_code,
        outcome.result_desc,
        transfer.originator_conversation_id,
        transfer.conversation_id,
        transfer.receipt,
        transfer.timeout_url,
        parameters,
    )


def queue_timeout_body(transfer: Transfer) -> dict[str, object]:
    """What the QueueTimeOutURL is sent (shape unverified: Daraja documents none)."""
    return {
        "Result": {
            "ResultType": 1,
            "ResultCode": 1,
            "ResultDesc": QUEUE_TIMEOUT_DESC,
            "OriginatorConversationID": transfer.originator_conversation_id,
            "ConversationID": transfer.conversation_id,
        }
    }


def status_result_body(
    transfer: Transfer | None,
    now: float,
    query: tuple[str, str],
    asked_receipt: str | None,
    timeout_url: str,
) -> dict[str, object]:
    """The Transaction Status result: what the record says, or "no such transaction"."""
    originator_id, conversation_id = query
    known = transfer is not None and transfer.outcome.result != "timeout"
    if transfer is None or not known or transfer.outcome.result_code == WRONG_CREDENTIAL:
        return _envelope(
            UNKNOWN_ORIGINAL,
            describe_transfer(UNKNOWN_ORIGINAL),
            originator_id,
            conversation_id,
            asked_receipt,
            timeout_url,
        )
    if not transfer.is_due(now):
        status = "Pending"
    elif transfer.outcome.succeeded:
        status = "Completed"
    else:
        status = "Failed"
    parameters: dict[str, object] = {
        "DebitPartyName": f"{transfer.shortcode} - Sandbox Merchant",
        "CreditPartyName": f"{transfer.party} - Sandbox Customer",
        "OriginatorConversationID": transfer.originator_conversation_id,
        "InitiatedTime": int(transfer.created_at_digits),
        "DebitAccountType": "Utility Account",
        "DebitPartyCharges": "",
        "TransactionReason": "",
        "ReasonType": "Business Payment to Customer via API"
        if transfer.kind == "b2c"
        else "Reversal",
        "TransactionStatus": status,
        "FinalisedTime": int(ids.nairobi_now().strftime("%Y%m%d%H%M%S")),
        "Amount": float(transfer.amount),
        "ConversationID": transfer.conversation_id,
        "ReceiptNo": transfer.receipt or "",
    }
    return _envelope(
        0,
        "The service request is processed successfully.",
        originator_id,
        conversation_id,
        transfer.receipt or asked_receipt,
        timeout_url,
        parameters,
    )


# -- resources ------------------------------------------------------------------------------


def _acknowledgement(originator_id: str, conversation_id: str) -> dict[str, str]:
    """The synchronous answer to a request accepted for processing (its result comes later)."""
    return {
        "OriginatorConversationID": originator_id,
        "ConversationID": conversation_id,
        "ResponseCode": "0",
        "ResponseDescription": ACK_DESCRIPTION,
    }


class _MoneyOutResource(_AuthorizedJsonResource):
    def __init__(
        self,
        state: SimulatorState,
        book: TransferBook,
        scenarios: TransferScenarios,
        dispatcher: CallbackDispatcher,
        config: SimulatorConfig,
        keys: InitiatorKeys,
        initiators: Mapping[str, str],
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__(state)
        self._book = book
        self._scenarios = scenarios
        self._dispatcher = dispatcher
        self._config = config
        self._keys = keys
        self._initiators = initiators
        self._sleep = sleep

    def _credential_ok(self, body: Mapping[str, object], name_field: str) -> bool:
        name = _string(body, name_field)
        credential = _string(body, "SecurityCredential", max_length=4096)
        return credential_matches(self._keys, self._initiators, name, credential)

    def _initiated(
        self, body: Mapping[str, object], name_field: str, commands: Collection[str]
    ) -> bool:
        """Whether the initiator's credential is right; raises InvalidField for a missing
        initiator or credential, then for a CommandID not in ``commands``."""
        credential_ok = self._credential_ok(body, name_field)
        if body.get("CommandID") not in commands:
            raise InvalidField("CommandID")
        return credential_ok

    def _make(
        self,
        resp: falcon.Response,
        kind: TransferKind,
        originator_id: str,
        fields: tuple[str, int, str, str | None],
        urls: tuple[str, str],
        credential_ok: bool,
        failure: ResultCode | None = None,
        reversible: int | None = None,
    ) -> None:
        """Decide, record, schedule and acknowledge one transfer (or refuse a reused id)."""
        shortcode, amount, party, original = fields
        if self._book.taken(originator_id):
            send_error(resp, 500, DUPLICATE_CODE, DUPLICATE_MESSAGE)
            return
        decision = self._scenarios.decide(party, amount, self._config.callback_delay_s)
        if decision.error is not None:
            self._sleep(decision.ack_delay_s)
            send_reply(resp, decision.error)
            return
        outcome = decision.outcome
        forced = WRONG_CREDENTIAL if not credential_ok else failure
        if forced is not None:
            outcome = TransferOutcome(
                forced, describe_transfer(forced), "once", outcome.delay_s, "rule"
            )
        transfer = self._book.make(
            kind, originator_id, shortcode, amount, party, original, urls, outcome, reversible
        )
        if transfer is None:  # lost a race with the same id
            send_error(resp, 500, DUPLICATE_CODE, DUPLICATE_MESSAGE)
            return
        self._schedule(transfer)
        self._sleep(decision.ack_delay_s)  # the transfer is made before a slow answer
        resp.media = _acknowledgement(originator_id, transfer.conversation_id)

    def _schedule(self, transfer: Transfer) -> None:
        key = transfer.originator_conversation_id
        mode = transfer.outcome.result
        if mode == "timeout":
            body = queue_timeout_body(transfer)
            self._dispatcher.schedule(transfer.due_at, key, transfer.timeout_url, body)
            return
        body = transfer_result_body(transfer)
        times = {"none": 0, "once": 1, "twice": 2}[mode]
        for n in range(times):
            self._dispatcher.schedule(
                transfer.due_at + n * max(transfer.outcome.delay_s, 0.05),
                key,
                transfer.result_url,
                body,
            )


class ReversalResource(_MoneyOutResource):
    """``POST /mpesa/reversal/v1/request``: give an STK collection's money back."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._body(req, resp)
        if body is None:
            return
        try:
            credential_ok = self._initiated(body, "Initiator", ("TransactionReversal",))
            receipt = _string(body, "TransactionID", max_length=20)
            amount = _whole_amount(body)
            shortcode = shortcode_field(body, "ReceiverParty")
            if str(body.get("RecieverIdentifierType")) != "11":
                raise InvalidField("RecieverIdentifierType")
            urls = (_url(body, "ResultURL"), _url(body, "QueueTimeOutURL"))
            _remarks(body)
            originator_id = _optional_id(body, "OriginatorConversationID")
        except InvalidField as exc:
            send_error(resp, 400, "400.002.02", str(exc))
            return
        payment = next(
            (
                t
                for t in self._state.transactions()
                if t.receipt == receipt and t.shortcode == shortcode
            ),
            None,
        )
        failure: ResultCode | None = None
        if payment is None or amount > payment.amount:
            failure = UNKNOWN_ORIGINAL
        party = payment.phone if payment is not None else ""
        self._make(
            resp,
            "reversal",
            originator_id or ids.request_id(),
            (shortcode, amount, party, receipt),
            urls,
            credential_ok,
            failure,
            payment.amount if payment is not None else None,
        )


class B2CResource(_MoneyOutResource):
    """``POST /mpesa/b2c/v3/paymentrequest``: pay a phone from the B2C shortcode."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._body(req, resp)
        if body is None:
            return
        try:
            originator_id = _string(body, "OriginatorConversationID")
            credential_ok = self._initiated(body, "InitiatorName", B2C_COMMANDS)
            amount = _whole_amount(body)
            shortcode = shortcode_field(body, "PartyA")
            phone = _msisdn(body, "PartyB")
            _remarks(body)
            urls = (_url(body, "ResultURL"), _url(body, "QueueTimeOutURL"))
        except InvalidField as exc:
            send_error(resp, 400, "400.002.02", str(exc))
            return
        failure: ResultCode | None = None
        if amount < B2C_MIN:
            failure = 2
        elif amount > B2C_MAX:
            failure = 3
        self._make(
            resp,
            "b2c",
            originator_id,
            (shortcode, amount, phone, None),
            urls,
            credential_ok,
            failure,
        )


class TransactionStatusResource(_MoneyOutResource):
    """``POST /mpesa/transactionstatus/v1/query``: the record's word, POSTed to ResultURL."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._body(req, resp)
        if body is None:
            return
        try:
            credential_ok = self._initiated(body, "Initiator", ("TransactionStatusQuery",))
            receipt = _optional_id(body, "TransactionID")
            original = _optional_id(body, "OriginalConversationID")
            if receipt is None and original is None:
                raise InvalidField("TransactionID")
            shortcode_field(body, "PartyA")
            if str(body.get("IdentifierType")) not in ("1", "2", "4"):
                raise InvalidField("IdentifierType")
            result_url, timeout_url = _url(body, "ResultURL"), _url(body, "QueueTimeOutURL")
            _remarks(body)
        except InvalidField as exc:
            send_error(resp, 400, "400.002.02", str(exc))
            return
        query = (ids.request_id(), ids.conversation_id())
        now = self._state.now()
        if credential_ok:
            found = self._book.find(original, receipt)
            document = status_result_body(found, now, query, receipt, timeout_url)
        else:
            document = _envelope(
                WRONG_CREDENTIAL,
                describe_transfer(WRONG_CREDENTIAL),
                *query,
                receipt,
                timeout_url,
            )
        due_at = now + self._config.callback_delay_s
        self._dispatcher.schedule(due_at, query[0], result_url, document)
        resp.media = _acknowledgement(*query)
