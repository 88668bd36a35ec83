"""IntaSend's money out on the wire: chargebacks (refunds) and send-money (payouts).

Pure shapes and mappings; the calls are :class:`~shared.gateways.intasend.client.IntaSendAdapter`'s.

* A refund is a chargeback ``POST chargebacks/`` ``{invoice, amount, reason,
  reason_details}`` with our ``request_ref`` as ``reason_details``, so that a
  chargeback whose answer was lost is found again in ``GET chargebacks/``. Its
  statuses: ``COMPLETED`` (given back), ``CANCELLED`` (not), ``PENDING`` /
  ``DISPUTED`` / ``OVERDUE`` (not yet). Its webhook (to the dashboard URL):
  ``chargeback_id, invoice{…}, amount, reason, status, resolution, challenge``.
* A payout is a send-money batch of one M-Pesa B2C transaction, with our
  ``request_ref`` as the transaction's ``idempotency_key`` and as the batch's
  ``api_ref``; ``callback_url`` is the result URL (``…/xr-<ref>``). Its answer,
  status and callback are the batch: ``tracking_id, status, status_code,
  transactions[{status, status_code, status_description, provider_reference,
  idempotency_key, amount, …}]`` (IntaSend's "send money events").

Unverified, and so kept lenient or conservative: the chargeback ``reason``
vocabulary (free text is sent); that chargeback ids come as ``id`` (answers) and
``chargeback_id`` (webhooks); that ``idempotency_key`` refuses a second
transaction with the same key (a refusal naming it is read as
``duplicate_transfer``); that ``api_ref`` is kept on a batch; that
``GET send-money/`` lists batches (paged like ``GET chargebacks/``); what
``TC108`` is (read as failed). Transaction codes: ``TS100`` succeeded;
``TF103``, ``TF106``, ``TC108`` failed; every other one (``TP101``, ``TP102``,
``TF104``, ``TF105`` "cannot be determined", ``TH107`` "under observation")
pending. A failed batch (``BF102``, ``BF105``, ``BF107``, ``BE111``) fails its
transaction only while that is still new (``TP101``): nothing was sent then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.intasend.transformers import MAX_ID_LENGTH, NARRATIVE_MAX
from shared.gateways.intasend.webhooks import json_document, masked_body
from shared.gateways.transfers import (
    RESULT_TAIL,
    TIMEOUT_TAIL,
    TransferEvent,
    TransferRequest,
    TransferState,
    TransferVerdict,
)

CHARGEBACKS_PATH: Final = "chargebacks/"
SEND_MONEY_INITIATE_PATH: Final = "send-money/initiate/"
SEND_MONEY_APPROVE_PATH: Final = "send-money/approve/"
SEND_MONEY_STATUS_PATH: Final = "send-money/status/"
SEND_MONEY_LIST_PATH: Final = "send-money/"  # unverified (see the module's docstring)
PROVIDER: Final = "MPESA-B2C"
REASON_MAX: Final = 255

# Chargeback statuses.
CHARGEBACK_STATES: Final[Mapping[str, TransferState]] = {
    "COMPLETED": TransferState.SUCCEEDED,
    "CANCELLED": TransferState.FAILED,
    "PENDING": TransferState.PENDING,
    "DISPUTED": TransferState.PENDING,
    "OVERDUE": TransferState.PENDING,
}

# Send-money codes (IntaSend's "payment statuses reference").
TX_SUCCEEDED: Final = frozenset({"TS100"})
TX_FAILED: Final = frozenset({"TF103", "TF106", "TC108"})
TX_NEW: Final = "TP101"
BATCH_AWAITING_APPROVAL: Final = "BP103"
BATCH_FAILED: Final[Mapping[str, errors.ErrorCode]] = {
    "BF102": errors.TRANSFER_REFUSED,
    "BF105": errors.GATEWAY_FUNDS_LOW,  # failed checking the float balance
    "BF107": errors.GATEWAY_FUNDS_LOW,  # failed the advance float check
    "BE111": errors.TRANSFER_REFUSED,  # ended or cancelled early
}
# When a code is missing: the words of the transaction's status.
TX_WORDS: Final[Mapping[str, TransferState]] = {
    "successful": TransferState.SUCCEEDED,
    "success": TransferState.SUCCEEDED,
    "completed": TransferState.SUCCEEDED,
    "failed": TransferState.FAILED,
    "cancelled": TransferState.FAILED,
}
# Words of a failed transaction's description, first match wins.
FAILURE_WORDS: Final[tuple[tuple[str, errors.ErrorCode], ...]] = (
    ("not registered", errors.RECIPIENT_INVALID),
    ("invalid account", errors.RECIPIENT_INVALID),
    ("invalid recipient", errors.RECIPIENT_INVALID),
    ("recipient", errors.RECIPIENT_INVALID),
    ("insufficient", errors.GATEWAY_FUNDS_LOW),
    ("balance", errors.GATEWAY_FUNDS_LOW),
    ("float", errors.GATEWAY_FUNDS_LOW),
    ("limit", errors.LIMIT_EXCEEDED),
)


class TransferUnreadable(ValueError):
    """A chargeback or send-money document that is not IntaSend's shape."""


# -- requests ---------------------------------------------------------------------------------


def chargeback_body(request: TransferRequest) -> dict[str, str]:
    """``POST chargebacks/``: ``reason_details`` is our request_ref, to find it again."""
    return {
        "invoice": str(request.payment_gateway_ref),
        "amount": request.amount.format(),
        "reason": (request.reason or "Refund")[:REASON_MAX],
        "reason_details": request.request_ref,
    }


def send_money_body(request: TransferRequest, requires_approval: bool) -> dict[str, Any]:
    """``POST send-money/initiate/``: one M-Pesa B2C transaction to ``request.phone``."""
    return {
        "provider": PROVIDER,
        "currency": request.amount.currency,
        "transactions": [
            {
                "account": request.phone,
                "amount": request.amount.format(),
                "narrative": (request.reason or "Payout")[:NARRATIVE_MAX],
                "idempotency_key": request.request_ref,
            }
        ],
        "callback_url": request.result_url,
        "requires_approval": "YES" if requires_approval else "NO",
        "api_ref": request.request_ref,
    }


def page_items(body: object) -> tuple[list[Mapping[str, Any]], bool]:
    """A list answer's items and whether another page follows (a bare list, or
    ``{results, next}``). Raises TransferUnreadable."""
    if isinstance(body, list):
        return [item for item in body if isinstance(item, Mapping)], False
    if isinstance(body, Mapping) and isinstance(body.get("results"), list):
        items = [item for item in body["results"] if isinstance(item, Mapping)]
        return items, bool(body.get("next"))
    raise TransferUnreadable("not a list of results")


# -- reading chargebacks -------------------------------------------------------------------------


def _text(value: object, limit: int = MAX_ID_LENGTH) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text[:limit] if text else None


def _amount(value: object) -> Money | None:
    if value is None or value == "":
        return None
    try:
        money = Money.parse_major(value, "KES")
    except MalipoError:
        raise TransferUnreadable(f"not an amount: {str(value)[:20]!r}") from None
    if money.amount_minor < 0:
        raise TransferUnreadable("a negative amount")
    return money


def chargeback_id_of(document: Mapping[str, Any]) -> str:
    """``id`` in answers, ``chargeback_id`` in webhooks. Raises TransferUnreadable."""
    found = _text(document.get("chargeback_id")) or _text(document.get("id"))
    if found is None:
        raise TransferUnreadable("a chargeback without an id")
    return found


def chargeback_verdict(document: Mapping[str, Any]) -> TransferVerdict:
    """What a chargeback says. Raises TransferUnreadable."""
    status = str(document.get("status") or "").strip().upper()
    state = CHARGEBACK_STATES.get(status)
    if state is None:
        raise TransferUnreadable(f"not a chargeback status: {status[:20]!r}")
    resolution = _text(document.get("resolution"), 300) or ""
    return TransferVerdict(
        state=state,
        result_code=status,
        failure_code=errors.TRANSFER_REFUSED.code if state is TransferState.FAILED else None,
        message=resolution or status,
        receipt=chargeback_id_of(document),
        amount=_amount(document.get("amount")),
    )


def is_ours(chargeback: Mapping[str, Any], request_ref: str) -> bool:
    return str(chargeback.get("reason_details") or "").strip() == request_ref


# -- reading send-money batches ------------------------------------------------------------------


def tracking_id_of(document: Mapping[str, Any]) -> str:
    found = _text(document.get("tracking_id"))
    if found is None:
        raise TransferUnreadable("a send-money batch without a tracking_id")
    return found


def transaction_of(batch: Mapping[str, Any], request_ref: str | None) -> Mapping[str, Any]:
    """The batch's transaction that is ours (by idempotency_key), else its only one."""
    found = batch.get("transactions")
    transactions = [t for t in found if isinstance(t, Mapping)] if isinstance(found, list) else []
    if request_ref is not None:
        for transaction in transactions:
            if _text(transaction.get("idempotency_key")) == request_ref:
                return transaction
    if len(transactions) != 1:
        raise TransferUnreadable(f"{len(transactions)} transactions, none of them ours")
    return transactions[0]


def is_our_batch(batch: Mapping[str, Any], request_ref: str) -> bool:
    if _text(batch.get("api_ref")) == request_ref:
        return True
    found = batch.get("transactions")
    return isinstance(found, list) and any(
        isinstance(t, Mapping) and _text(t.get("idempotency_key")) == request_ref for t in found
    )


def failure_of(description: str) -> errors.ErrorCode:
    """The catalogue code of a failed transaction, by its description's words."""
    lowered = description.lower()
    for words, error in FAILURE_WORDS:
        if words in lowered:
            return error
    return errors.TRANSFER_REFUSED


def transaction_state(batch_code: str, code: str, status: str) -> TransferState:
    if code in TX_SUCCEEDED:
        return TransferState.SUCCEEDED
    if code in TX_FAILED:
        return TransferState.FAILED
    if batch_code in BATCH_FAILED and code in ("", TX_NEW):
        return TransferState.FAILED
    if not code:
        return TX_WORDS.get(status.strip().lower(), TransferState.PENDING)
    return TransferState.PENDING


def send_money_verdict(batch: Mapping[str, Any], request_ref: str | None) -> TransferVerdict:
    """What a send-money batch says of our transaction. Raises TransferUnreadable."""
    transaction = transaction_of(batch, request_ref)
    batch_code = (_text(batch.get("status_code"), 20) or "").upper()
    code = (_text(transaction.get("status_code"), 20) or "").upper()
    status = _text(transaction.get("status"), 60) or ""
    state = transaction_state(batch_code, code, status)
    description = (
        _text(transaction.get("status_description"), 300)
        or _text(transaction.get("failed_reason"), 300)
        or _text(batch.get("status"), 300)
        or ""
    )
    failure: str | None = None
    if state is TransferState.FAILED:
        listed = BATCH_FAILED.get(batch_code) if code in ("", TX_NEW) else None
        failure = (listed or failure_of(description)).code
    return TransferVerdict(
        state=state,
        result_code=(f"{batch_code}:{code}" if batch_code else code or status)[:40],
        failure_code=failure,
        message=description or status,
        receipt=_text(transaction.get("provider_reference"))
        if state is TransferState.SUCCEEDED
        else None,
        amount=_amount(transaction.get("amount")),
    )


# -- results that arrive ---------------------------------------------------------------------------


def _ref_of_tail(tail: str | None) -> str | None:
    for prefix in (RESULT_TAIL, TIMEOUT_TAIL):
        if tail and tail.startswith(prefix) and len(tail) > len(prefix):
            return tail[len(prefix) :][:MAX_ID_LENGTH]
    return None


def transfer_event(body: bytes, tail: str | None) -> TransferEvent | None:
    """The transfer result a webhook carries, None for a collection's.

    A request to a result URL (``xr-<ref>``) must be a send-money batch; a chargeback
    (``chargeback_id``) or a batch (``tracking_id`` and ``transactions``) arriving at
    the dashboard URL is one too. Raises TransferUnreadable for one it cannot read.
    """
    ref = _ref_of_tail(tail)
    document = json_document(body)
    if document is None:
        if ref is not None:
            raise TransferUnreadable("a send-money result that is not a JSON object")
        return None
    if "chargeback_id" in document and ref is None:
        verdict = chargeback_verdict(document)
        chargeback_id = chargeback_id_of(document)
        details = _text(document.get("reason_details"))
        return TransferEvent(
            event_key=f"chargeback:{chargeback_id}:{verdict.result_code}",
            verdict=verdict,
            masked_body=masked_body(document),
            request_ref=details,
            gateway_ref=chargeback_id,
        )
    if ref is None and not ("tracking_id" in document and "transactions" in document):
        return None
    tracking_id = tracking_id_of(document)
    verdict = send_money_verdict(document, ref)
    transaction = transaction_of(document, ref)
    return TransferEvent(
        event_key=f"send-money:{tracking_id}:{verdict.result_code}",
        verdict=verdict,
        masked_body=masked_body(document),
        request_ref=ref or _text(transaction.get("idempotency_key")),
        gateway_ref=tracking_id,
    )
