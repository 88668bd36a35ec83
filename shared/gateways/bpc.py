"""What Ameriabank's vPOS 3.1 and ArCa's iPay share: BPC's order states and action codes.

Both banks' card pages run on BPC's payment engine (RBS), and both status APIs
number an order's state the same way (Ameria's document, table 2; BPC's
``orderStatus``)::

    0 registered, not paid     1 approved: the amount is held (two-stage payments)
    2 deposited (paid)         3 authorization cancelled (void / reversed)
    4 refunded                 5 authorization via the issuer's ACS (3-D Secure) under way
    6 declined

A decline carries the engine's action code: ArCa's ``actionCode`` as is
(``116``), Ameria's ``ResponseCode`` behind a ``"0"`` (``"0116"``, ``"0-2007"``:
Ameria's table 1). Those codes are the ISO 8583 (1993) action codes plus the
engine's own negative ones; :data:`ACTION_CODES` reads the few worth a catalogue
code, any other decline is ``gateway_rejected``.

Single- or two-stage is the merchant's set-up at the bank, not part of the wire:
the ``two_step`` credential says which. With ``"no"`` (the default), state 1 is
a payment; with ``"yes"``, it is a hold that only a deposit (``ConfirmPayment`` /
``deposit.do``, not implemented yet) would turn into money, so it stays pending.

What no document confirms (and is decided conservatively here): that state 1 on a
single-stage merchant is final (it is read as paid, as both banks' integrators
do); what each action code means beyond the engine's tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.base import GatewayOutcomeUnknown, GatewayUnavailable, Outcome
from shared.gateways.description import CredentialField
from shared.gateways.transfers import (
    TransferRequest,
    TransferState,
    TransferSubmission,
    TransferVerdict,
)
from shared.gateways.transport import Answer, HttpTransport

TWO_STEP: Final = "two_step"
TWO_STEP_CHOICES: Final = ("yes", "no")
AUTH_STATUSES: Final = frozenset({401, 403})
BUSY_STATUSES: Final = frozenset({429, 503})


class OrderStatus(IntEnum):
    """An order's state in BPC's numbering (Ameria's ``OrderStatus``, ArCa's ``orderStatus``)."""

    STARTED = 0
    APPROVED = 1
    DEPOSITED = 2
    VOID = 3
    REFUNDED = 4
    AUTHENTICATING = 5
    DECLINED = 6


@dataclass(frozen=True)
class StateMeaning:
    """An order state in malipo's terms: the outcome, a catalogue failure code, and why."""

    outcome: Outcome
    failure_code: str | None
    # Short words for the verdict's result code ("deposited", "declined:116").
    label: str
    message: str = ""


def _failed(error: errors.ErrorCode, label: str, message: str) -> StateMeaning:
    return StateMeaning(Outcome.FAILED, error.code, label, message)


# Engine action codes worth their own catalogue code (others: gateway_rejected).
ACTION_CODES: Final[Mapping[int, tuple[Outcome, errors.ErrorCode, str]]] = {
    116: (Outcome.FAILED, errors.INSUFFICIENT_FUNDS, "not enough money on the card"),
    121: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the card's amount limit is exceeded"),
    123: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the card's transaction count limit is exceeded"),
    209: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the card's limitations are exceeded"),
    903: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the amount exceeds the issuer's limit"),
    -20010: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the issuer's limits block the amount"),
    -2002: (Outcome.FAILED, errors.LIMIT_EXCEEDED, "the merchant's limits block the amount"),
    # The customer did not enter the card in time (the page's session is 20 minutes).
    -2007: (Outcome.EXPIRED, errors.TRANSACTION_EXPIRED, "the payment page timed out"),
    1001: (Outcome.EXPIRED, errors.TRANSACTION_EXPIRED, "the card data was not entered in time"),
}


def action_code(value: object) -> int | None:
    """An engine action code as an integer (``116``, ``"116"``, ``"-2007"``); None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isdigit() and len(digits) <= 9:
            return int(text)
    return None


def decline_meaning(code: int | None) -> StateMeaning:
    """A declined order (state 6), by its action code when one is known."""
    listed = ACTION_CODES.get(code) if code is not None else None
    label = "declined" if code is None else f"declined:{code}"
    if listed is None:
        detail = "the bank declined the card" + ("" if code is None else f" (code {code})")
        return _failed(errors.GATEWAY_REJECTED, label, detail)
    outcome, error, message = listed
    return StateMeaning(outcome, error.code, label, message)


def state_meaning(status: int, *, two_step: bool, code: int | None = None) -> StateMeaning:
    """What an order state means; ``code`` is the decline's action code (state 6 only).

    A state this table does not know is pending: the payment window decides, and
    no unknown word ever moves money.
    """
    if status == OrderStatus.STARTED:
        return StateMeaning(Outcome.PENDING, None, "started", "registered, not paid yet")
    if status == OrderStatus.APPROVED:
        if two_step:
            return StateMeaning(
                Outcome.PENDING,
                None,
                "approved",
                "the amount is held, not deposited (deposit is not implemented yet)",
            )
        return StateMeaning(Outcome.SUCCEEDED, None, "approved", "approved (single-stage)")
    if status == OrderStatus.DEPOSITED:
        return StateMeaning(Outcome.SUCCEEDED, None, "deposited", "paid")
    if status == OrderStatus.VOID:
        return StateMeaning(
            Outcome.CANCELLED,
            errors.GATEWAY_REJECTED.code,
            "void",
            "the authorization was cancelled at the bank",
        )
    if status == OrderStatus.REFUNDED:
        # Paid first: the collection succeeded; what was given back is the refunds' business.
        return StateMeaning(Outcome.SUCCEEDED, None, "refunded", "paid, then refunded")
    if status == OrderStatus.AUTHENTICATING:
        return StateMeaning(Outcome.PENDING, None, "authenticating", "3-D Secure under way")
    if status == OrderStatus.DECLINED:
        return decline_meaning(code)
    return StateMeaning(Outcome.PENDING, None, f"status:{status}", f"unknown order status {status}")


def order_status(value: object) -> int | None:
    """An order state as an integer (it arrives as a number or a digit string); None if not one."""
    code = action_code(value)
    return code if code is not None and 0 <= code < 100 else None


# -- the credential -----------------------------------------------------------------------------


def two_step_field(bank: str) -> CredentialField:
    """The optional ``two_step`` credential both banks' descriptions list."""
    return CredentialField(
        TWO_STEP,
        f"'yes' when {bank} set the merchant up for two-stage payments (hold, then deposit; "
        "deposit is not implemented, so a held payment stays pending)",
        required=False,
        choices=TWO_STEP_CHOICES,
        default="no",
    )


def two_step_of(stored: Mapping[str, Any]) -> bool:
    """The stored ``two_step`` as a flag; absent or empty is "no", anything else a ValueError."""
    value = stored.get(TWO_STEP)
    text = "no" if value in (None, "") else str(value).strip().lower()
    if text not in TWO_STEP_CHOICES:
        raise ValueError(f"two_step must be one of {TWO_STEP_CHOICES}")
    return text == "yes"


# -- refunds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundCall:
    """One bank's refund call, as :func:`send_refund` makes it (its wire stays in its package)."""

    name: str  # in messages: "RefundPayment", "refund.do"
    path: str
    order_ref: str  # what a payment's gateway_ref is at the bank: "Ameria PaymentID"
    # The statuses other than 200 answered before the bank acted: a refusal. Any other
    # answer but 200 is unknown (401/403 are configuration, 429/503 busy, before these).
    refusing: range
    form: bool = False  # the body goes as a form (ArCa), else as JSON (Ameria)


def status_document(
    http: HttpTransport,
    name: str,
    path: str,
    *,
    json: dict[str, Any] | None = None,
    data: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A bank's status answer (a JSON or a form body, asked idempotently).

    Raises GatewayUnavailable when there is no JSON object with HTTP 200: a status
    question may always be asked again.
    """
    answer = http.call("POST", path, idempotent=True, json=json, data=data)
    if answer.status != 200 or not answer.document:
        raise GatewayUnavailable(
            f"{name} answered HTTP {answer.status}", retry_after_s=answer.retry_after_s()
        )
    return answer.document


def refund_refused(
    error: errors.ErrorCode, message: str, raw: dict[str, Any] | None = None
) -> TransferSubmission:
    return TransferSubmission(
        accepted=False, failure_code=error.code, message=message[:300], raw=raw or {}
    )


def refund_made(
    request: TransferRequest, result_code: str, message: str, document: dict[str, Any]
) -> TransferSubmission:
    """A refund the bank answered as done: accepted with its final word."""
    verdict = refund_succeeded(request, result_code, message or "refunded")
    return TransferSubmission(accepted=True, verdict=verdict, message=message, raw=document)


def send_refund(
    http: HttpTransport,
    call: RefundCall,
    request: TransferRequest,
    body: Callable[[str], dict[str, Any]],
    read: Callable[[dict[str, Any]], TransferSubmission],
    detail: Callable[[Answer], str] = lambda answer: answer.text[:200],
) -> TransferSubmission:
    """Send one refund of the payment's order (``body`` of its order id) and ``read`` the
    bank's JSON answer; what is not a 200 with a JSON object is decided here.

    Sent once (``idempotent=False``): neither bank takes an id of ours for a refund, so a
    lost answer is :class:`GatewayOutcomeUnknown`, settled by the refunded total. Raises
    GatewayUnavailable (busy: 429, 503) or GatewayOutcomeUnknown; ``detail`` is the words
    of a refusing status's answer.
    """
    order_id = request.payment_gateway_ref
    if not order_id:
        return refund_refused(errors.TRANSFER_REFUSED, f"the payment has no {call.order_ref}")
    try:
        sent = body(order_id)
    except MalipoError as exc:
        return refund_refused(exc.error, exc.detail)
    if call.form:
        answer = http.call("POST", call.path, idempotent=False, data=sent)
    else:
        answer = http.call("POST", call.path, idempotent=False, json=sent)
    if answer.status in AUTH_STATUSES:
        return refund_refused(
            errors.GATEWAY_CONFIGURATION, f"{call.name} answered HTTP {answer.status}"
        )
    if answer.status in BUSY_STATUSES:
        raise GatewayUnavailable(
            f"{call.name} answered HTTP {answer.status}", retry_after_s=answer.retry_after_s()
        )
    if answer.status == 200 and answer.document:
        return read(answer.document)
    if answer.status != 200 and answer.status in call.refusing:
        return refund_refused(
            errors.TRANSFER_REFUSED,
            f"{call.name} answered HTTP {answer.status}: {detail(answer)}",
        )
    raise GatewayOutcomeUnknown(f"{call.name} answered HTTP {answer.status} unreadably")


def refund_status(
    call: RefundCall, request: TransferRequest, refunded: Callable[[str], Money | None]
) -> TransferVerdict:
    """Whether a refund was made, by the order's total that ``refunded`` reads for its order
    id (None: the bank does not know the order, so it was never refunded); see
    :func:`refund_by_total`. Raises GatewayUnavailable."""
    order_id = request.payment_gateway_ref
    if not order_id:
        raise GatewayUnavailable(f"the refund's payment has no {call.order_ref}")
    return refund_by_total(refunded(order_id), request)


def refund_succeeded(request: TransferRequest, result_code: str, message: str) -> TransferVerdict:
    """A synchronous refund the bank answered as done: its final word."""
    return TransferVerdict(
        TransferState.SUCCEEDED, result_code[:40], message=message[:300], amount=request.amount
    )


def refund_by_total(refunded: Money | None, request: TransferRequest) -> TransferVerdict:
    """Whether the bank made this refund, by the order's refunded total.

    Both banks refund synchronously: a refund they acted on shows in the order's
    total at once. So a total of at least what earlier refunds gave back plus this
    one means it was made; less means it never was (``NOT_FOUND``), and it may be
    sent again. The caller queries only refunds whose answer was lost, one at a time
    per payment (the core's rule), or a concurrent refund would count as this one.
    """
    before = request.payment_refunded.amount_minor if request.payment_refunded else 0
    total = refunded.amount_minor if refunded is not None else 0
    shown = refunded.format() if refunded is not None else "0"
    if total >= before + request.amount.amount_minor:
        return TransferVerdict(
            TransferState.SUCCEEDED,
            "refunded",
            message=f"the order's refunded total is {shown}",
            amount=request.amount,
        )
    return TransferVerdict(
        TransferState.NOT_FOUND,
        "not_refunded",
        message=f"the order's refunded total is {shown}: this refund was not made",
    )
