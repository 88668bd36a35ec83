"""Daraja money out, the pure part: request bodies, amount rules, result codes, results.

Reversal (refunds of STK collections), B2C v3 (payouts) and Transaction Status are
asynchronous: the call is acknowledged at once and the result is POSTed later to
the ResultURL (``<callback_url>/xr-<request_ref>``), or a queue-timeout notice to the
QueueTimeOutURL (``…/xt-<request_ref>``). The tail names the transfer, so it is the
authoritative request_ref; the body's OriginatorConversationID is only a fallback.

A Transaction Status result arrives at the same URLs as the transfer's own result.
It is told apart by its ``TransactionStatus`` parameter, or by an
OriginatorConversationID that is not the transfer's (Daraja gives the query an id of
its own): a status query that failed (wrong credential, say) must never read as
the transfer having failed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money, mpesa_whole_shillings
from shared.domain.phone import mask_phone_numbers
from shared.gateways.base import CallbackMalformed, InboundCallback
from shared.gateways.daraja.stk import DarajaCredentials
from shared.gateways.transfers import (
    RESULT_TAIL,
    TIMEOUT_TAIL,
    TransferEvent,
    TransferKind,
    TransferRequest,
    TransferState,
    TransferVerdict,
)

REVERSAL_PATH = "/mpesa/reversal/v1/request"
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
STATUS_PATH = "/mpesa/transactionstatus/v1/query"

B2C_MIN_KES = 10
B2C_MAX_KES = 250_000
REMARKS_MIN, REMARKS_MAX = 2, 100
OCCASION_MAX = 100
# Identifier types: 11 = the organisation's shortcode (Reversal, sic), 4 = organisation.
RECEIVER_IDENTIFIER_TYPE = "11"
STATUS_IDENTIFIER_TYPE = "4"

# Synchronous error: the OriginatorConversationID was used before (B2C v3).
DUPLICATE_ORIGINATOR_ID = "500.002.1001"
QUERY_SENT = "query_sent"
QUEUE_TIMEOUT = "queue_timeout"
# The Transaction Status result for a transaction M-Pesa does not know (unverified: the
# code Reversal documents for an unknown OriginalTransactionID; the simulator sends it).
STATUS_NOT_FOUND_CODES: Final = frozenset({"R000002"})
COMPLETED = "completed"
STILL_OPEN = frozenset({"pending", "authorized", "processing", "in progress"})
MAX_ID_LENGTH = 100


def _failed(code: errors.ErrorCode) -> str:
    return code.code


# ResultCodes of B2C and Reversal results (G2 result codes as integrators list them; only
# 0, 1, 2001, 2028, 2040, 8006, R000001 and R000002 are on Daraja pages): catalogue codes.
RESULT_FAILURES: Final[dict[str, str]] = {
    "1": _failed(errors.GATEWAY_FUNDS_LOW),  # the balance is insufficient
    "2": _failed(errors.LIMIT_EXCEEDED),  # less than the minimum transaction amount
    "3": _failed(errors.LIMIT_EXCEEDED),  # more than the maximum transaction amount
    "4": _failed(errors.LIMIT_EXCEEDED),  # would exceed the daily transfer limit
    "5": _failed(errors.GATEWAY_FUNDS_LOW),  # would go below the minimum balance
    "6": _failed(errors.GATEWAY_CONFIGURATION),  # unresolved primary party
    "7": _failed(errors.RECIPIENT_INVALID),  # unresolved receiver party
    "8": _failed(errors.LIMIT_EXCEEDED),  # would exceed the recipient's maximum balance
    "10": _failed(errors.RECIPIENT_INVALID),  # the MSISDN is not registered on M-Pesa
    "11": _failed(errors.GATEWAY_CONFIGURATION),  # the debit account is invalid
    "12": _failed(errors.RECIPIENT_INVALID),  # the credit account is invalid
    "13": _failed(errors.GATEWAY_CONFIGURATION),  # unresolved debit account
    "14": _failed(errors.RECIPIENT_INVALID),  # unresolved credit account
    "15": _failed(errors.DUPLICATE_TRANSFER),  # duplicate detected
    "17": _failed(errors.GATEWAY_ERROR),  # internal failure
    "20": _failed(errors.GATEWAY_CONFIGURATION),  # unresolved initiator
    "21": _failed(errors.GATEWAY_CONFIGURATION),  # the initiator is not allowed to
    "26": _failed(errors.GATEWAY_ERROR),  # system busy
    "2001": _failed(errors.GATEWAY_CONFIGURATION),  # the initiator information is invalid
    "2028": _failed(errors.GATEWAY_CONFIGURATION),  # not permitted by product assignment
    "2040": _failed(errors.RECIPIENT_INVALID),  # the customer type cannot be served
    "8006": _failed(errors.GATEWAY_CONFIGURATION),  # the security credential is locked
    "SFC_IC0003": _failed(errors.GATEWAY_CONFIGURATION),  # the operator does not exist
    "R000001": _failed(errors.DUPLICATE_TRANSFER),  # the transaction is already reversed
    "R000002": _failed(errors.TRANSFER_REFUSED),  # the OriginalTransactionID is invalid
}


def failure_of(result_code: str) -> str:
    """The catalogue code of a failed transfer's ResultCode; unknown: transfer_refused."""
    return RESULT_FAILURES.get(result_code.strip(), errors.TRANSFER_REFUSED.code)


# -- amounts and texts ----------------------------------------------------------------------


def check_payout_amount(amount: Money) -> int:
    """The whole shillings B2C takes (KES 10 to 250,000), else MalipoError."""
    shillings = mpesa_whole_shillings(amount)
    if not B2C_MIN_KES <= shillings <= B2C_MAX_KES:
        raise MalipoError(
            errors.AMOUNT_OUT_OF_RANGE, f"M-Pesa B2C pays KES {B2C_MIN_KES} to {B2C_MAX_KES:,}"
        )
    return shillings


def remarks(reason: str, fallback: str) -> str:
    """Daraja's Remarks: 2 to 100 characters, the fallback when the reason is too short."""
    text = " ".join(reason.split())[:REMARKS_MAX]
    return text if len(text) >= REMARKS_MIN else fallback


# -- request bodies -------------------------------------------------------------------------


def reversal_body(
    credentials: DarajaCredentials, request: TransferRequest, credential: str
) -> dict[str, Any]:
    """A Reversal of the collection ``request.payment_receipt`` into the payer's phone.

    ``OriginatorConversationID`` is B2C v3's field; whether Reversal honours it (and
    refuses a reused one) is unverified, so nothing relies on it for Reversal.
    """
    if not request.payment_receipt:
        raise MalipoError(errors.GATEWAY_REJECTED, "a reversal needs the M-Pesa receipt")
    return {
        "OriginatorConversationID": request.request_ref,
        "Initiator": credentials.initiator_name,
        "SecurityCredential": credential,
        "CommandID": "TransactionReversal",
        "TransactionID": request.payment_receipt,
        "Amount": mpesa_whole_shillings(request.amount),
        "ReceiverParty": credentials.shortcode,
        "RecieverIdentifierType": RECEIVER_IDENTIFIER_TYPE,  # sic
        "ResultURL": request.result_url,
        "QueueTimeOutURL": request.timeout_url,
        "Remarks": remarks(request.reason, "Refund"),
        "Occasion": request.transfer_id[:OCCASION_MAX],
    }


def b2c_body(
    credentials: DarajaCredentials, request: TransferRequest, credential: str
) -> dict[str, Any]:
    """A B2C v3 BusinessPayment of ``request.amount`` to ``request.phone``."""
    return {
        "OriginatorConversationID": request.request_ref,
        "InitiatorName": credentials.initiator_name,
        "SecurityCredential": credential,
        "CommandID": "BusinessPayment",
        "Amount": check_payout_amount(request.amount),
        "PartyA": credentials.payout_shortcode,
        "PartyB": request.phone,
        "Remarks": remarks(request.reason, "Payout"),
        "QueueTimeOutURL": request.timeout_url,
        "ResultURL": request.result_url,
        "Occassion": request.transfer_id[:OCCASION_MAX],  # sic
    }


def status_body(
    credentials: DarajaCredentials, request: TransferRequest, credential: str
) -> dict[str, Any]:
    """A Transaction Status query for the transfer whose OriginatorConversationID we chose.

    Looked up by ``OriginalConversationID`` (the portal's name for the transfer's id; the
    query's own OriginatorConversationID is left to Daraja so it cannot collide with it).
    No TransactionID: the transfer's own receipt is not known here, and the collection's
    receipt would find the collection, not the refund.
    """
    party = credentials.payout_shortcode if request.kind == TransferKind.PAYOUT else None
    return {
        "Initiator": credentials.initiator_name,
        "SecurityCredential": credential,
        "CommandID": "TransactionStatusQuery",
        "OriginalConversationID": request.request_ref,
        "PartyA": party or credentials.shortcode,
        "IdentifierType": STATUS_IDENTIFIER_TYPE,
        "ResultURL": request.result_url,
        "QueueTimeOutURL": request.timeout_url,
        "Remarks": "Transfer status",
        "Occasion": request.transfer_id[:OCCASION_MAX],
    }


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Result:
    """The fields of a ``{"Result": {...}}`` document, codes as text."""

    code: str
    desc: str
    originator_id: str | None
    conversation_id: str | None
    transaction_id: str | None
    parameters: dict[str, Any]


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CallbackMalformed(f"{name} is not text")
    text = str(value).strip()
    if len(text) > MAX_ID_LENGTH:
        raise CallbackMalformed(f"{name} is too long")
    return text or None


def _parameters(result: dict[str, Any]) -> dict[str, Any]:
    """``ResultParameters.ResultParameter`` as {Key: Value} (a lone item may be an object)."""
    holder = result.get("ResultParameters")
    if holder is None or holder == "":
        return {}
    items = holder.get("ResultParameter") if isinstance(holder, dict) else None
    if items is None:
        return {}
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise CallbackMalformed("ResultParameters.ResultParameter is not a list")
    return {
        item["Key"]: item.get("Value")
        for item in items
        if isinstance(item, dict) and isinstance(item.get("Key"), str)
    }


def _read_result(document: Any) -> _Result:
    result = document.get("Result") if isinstance(document, dict) else None
    if not isinstance(result, dict):
        raise CallbackMalformed("not a Daraja result: no Result object")
    code = _text(result.get("ResultCode"), "ResultCode")
    if code is None:
        raise CallbackMalformed("ResultCode is missing")
    return _Result(
        code=code,
        desc=str(result.get("ResultDesc") or "")[:300],
        originator_id=_text(result.get("OriginatorConversationID"), "OriginatorConversationID"),
        conversation_id=_text(result.get("ConversationID"), "ConversationID"),
        transaction_id=_text(result.get("TransactionID"), "TransactionID"),
        parameters=_parameters(result),
    )


def _amount(value: Any) -> Money | None:
    if value is None or value == "":
        return None
    try:
        return Money.parse_major(value, "KES")
    except MalipoError:
        raise CallbackMalformed("the amount is not an amount") from None


def _tail_ref(tail: str | None) -> tuple[str | None, str | None]:
    """(prefix, request_ref) of an ``xr-``/``xt-`` tail, else (None, None)."""
    for prefix in (RESULT_TAIL, TIMEOUT_TAIL):
        if tail and tail.startswith(prefix) and len(tail) > len(prefix):
            return prefix, tail[len(prefix) :]
    return None, None


def parse_transfer_result(body: bytes, tail: str | None) -> TransferEvent | None:
    """The transfer result a callback carries; None when it is not one (an STK callback).

    Raises CallbackMalformed for a result (``xr-``/``xt-`` tail, or a ``Result`` body)
    that cannot be read.
    """
    prefix, ref = _tail_ref(tail)
    try:
        document = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        document = None
        if prefix is None:
            return None
    masked = mask_phone_numbers(body.decode("utf-8", errors="replace"))
    if prefix == TIMEOUT_TAIL:
        return _timeout_event(document, ref, body, masked)
    if prefix is None and not (isinstance(document, dict) and "Result" in document):
        return None
    result = _read_result(document)
    request_ref = ref or result.originator_id
    is_status = "TransactionStatus" in result.parameters or (
        ref is not None and result.originator_id is not None and result.originator_id != ref
    )
    verdict = _status_verdict(result) if is_status else _transfer_verdict(result)
    gateway_ref = result.conversation_id
    if is_status:
        gateway_ref = _text(result.parameters.get("ConversationID"), "ConversationID")
    kind = "transfer-status" if is_status else "transfer"
    return TransferEvent(
        event_key=f"{kind}:{result.originator_id or request_ref}:{result.conversation_id}:"
        f"{result.code}",
        verdict=verdict,
        masked_body=masked,
        request_ref=request_ref,
        gateway_ref=gateway_ref,
    )


def _transfer_verdict(result: _Result) -> TransferVerdict:
    """A Reversal's or B2C's own result."""
    params = result.parameters
    if result.code == "0":
        receipt = _text(params.get("TransactionReceipt"), "TransactionReceipt")
        return TransferVerdict(
            TransferState.SUCCEEDED,
            result.code,
            message=result.desc,
            receipt=receipt or result.transaction_id,
            amount=_amount(params.get("TransactionAmount", params.get("Amount"))),
        )
    return TransferVerdict(
        TransferState.FAILED, result.code, failure_of(result.code), message=result.desc
    )


def _status_verdict(result: _Result) -> TransferVerdict:
    """A Transaction Status result: the transfer's state, or no news when the query failed."""
    status = result.parameters.get("TransactionStatus")
    if result.code in STATUS_NOT_FOUND_CODES:
        return TransferVerdict(TransferState.NOT_FOUND, result.code, message=result.desc)
    if result.code != "0" or not isinstance(status, str):
        # The query failed (credential, busy...): it says nothing about the transfer.
        return TransferVerdict(
            TransferState.PENDING, result.code, message=f"status query failed: {result.desc}"
        )
    message = f"TransactionStatus {status}"
    word = status.strip().lower()
    if word == COMPLETED:
        return TransferVerdict(
            TransferState.SUCCEEDED,
            result.code,
            message=message,
            receipt=_text(result.parameters.get("ReceiptNo"), "ReceiptNo"),
            amount=_amount(result.parameters.get("Amount")),
        )
    if word in STILL_OPEN:
        return TransferVerdict(TransferState.PENDING, result.code, message=message)
    return TransferVerdict(
        TransferState.FAILED, result.code, errors.TRANSFER_REFUSED.code, message=message
    )


def _timeout_event(document: Any, ref: str | None, body: bytes, masked: str) -> TransferEvent:
    """A QueueTimeOutURL notice: still pending (the request expired in Safaricom's queue
    or is late); whatever ids it carries are read, nothing else is required."""
    result = document.get("Result") if isinstance(document, dict) else None
    result = result if isinstance(result, dict) else {}
    conversation_id = _text(result.get("ConversationID"), "ConversationID")
    originator_id = _text(result.get("OriginatorConversationID"), "OriginatorConversationID")
    request_ref = ref or originator_id
    distinct = conversation_id or hashlib.sha256(body).hexdigest()[:16]
    verdict = TransferVerdict(
        TransferState.PENDING,
        QUEUE_TIMEOUT,
        message=str(result.get("ResultDesc") or "the request timed out in Daraja's queue")[:300],
    )
    return TransferEvent(
        event_key=f"transfer-timeout:{request_ref}:{distinct}",
        verdict=verdict,
        masked_body=masked,
        request_ref=request_ref,
        gateway_ref=conversation_id,
    )


def transfer_result(inbound: InboundCallback, tail: str | None) -> TransferEvent | None:
    return parse_transfer_result(inbound.body, tail)
