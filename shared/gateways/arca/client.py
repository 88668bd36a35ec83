"""The ArCa iPay adapter: register.do (the hosted page), getOrderStatusExtended.do, refund.do.

No callback is used: after the page, the customer's browser comes back to
malipo's return page (``returnUrl`` / ``failUrl``) with an ``orderId`` nobody
signed, and malipo asks getOrderStatusExtended.do. That answer is the only word
this adapter gives. (The engine can notify merchants by callback when ArCa sets
it up; malipo does not ask for it.)

register.do is sent once (``idempotent=False``): a timeout after sending is
:class:`GatewayOutcomeUnknown`, as the transport decides. An *answer* saying the
engine failed (HTTP 5xx or 429) is :class:`GatewayUnavailable`: an order it may
have registered anyway has a form URL nobody knows, so no customer can pay it,
and the retry is a new attempt with its own orderNumber. A non-zero
``errorCode`` is a refusal with a catalogue code and ArCa's message.

Unverified, and decided here: an unknown orderId (errorCode 6) is pending
(``not_found``: the payment window ends it); a refused login on the status call
(errorCode 5) is unavailable, not a verdict; a paid state with a non-zero
``actionCode`` is contradictory and left pending rather than credited; refund.do's
refusal codes (see ``codes``); that ``paymentAmountInfo.refundedAmount`` is the order's
running total of refunds, in luma, at once after errorCode 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import structlog

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways import bpc
from shared.gateways.arca import codes, wire
from shared.gateways.arca.credentials import ArcaCredentials
from shared.gateways.base import (
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    GatewayVerdict,
    InitiateResult,
    NextAction,
    Outcome,
    PaymentRequest,
    StatusResult,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.transfers import TransferRequest, TransferSubmission, TransferVerdict
from shared.gateways.transport import Answer, HttpTransport

log = structlog.stdlib.get_logger(__name__)

AUTH_STATUSES: Final = frozenset({401, 403})
MAX_ORDER_ID: Final = 64
MAX_FORM_URL: Final = 2000
_PAID_STATES: Final = frozenset(
    {bpc.OrderStatus.APPROVED, bpc.OrderStatus.DEPOSITED, bpc.OrderStatus.REFUNDED}
)
# A 4xx is a refusal of the request; any other answer but 200, an unknown outcome.
REFUND: Final = bpc.RefundCall(
    "refund.do", wire.REFUND_PATH, "ArCa orderId", range(400, 500), form=True
)


class ArcaAdapter:
    """ArCa iPay: card payments in AMD on ArCa's page (BPC's engine)."""

    name = "arca"

    def __init__(self, settings: GatewaySettings) -> None:
        self.http = HttpTransport(self.name, settings)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    # -- every adapter -------------------------------------------------------------------------

    def credentials(self, stored: Mapping[str, Any]) -> ArcaCredentials:
        return ArcaCredentials.from_stored(stored)

    def check_amount(self, amount: Money) -> None:
        wire.amount_minor(amount)

    # -- hosted ----------------------------------------------------------------------------------

    def start_hosted(self, credentials: ArcaCredentials, request: PaymentRequest) -> InitiateResult:
        """register.do, then its form URL. Raises GatewayUnavailable or GatewayOutcomeUnknown."""
        if request.return_urls is None:
            return InitiateResult.refused(
                errors.INVALID_REQUEST, "ArCa's page needs return URLs (returnUrl, failUrl)"
            )
        try:
            body = wire.register_body(credentials, request, request.return_urls)
        except MalipoError as exc:
            return InitiateResult.refused(exc.error, exc.detail)
        answer = self.http.call("POST", wire.REGISTER_PATH, idempotent=False, data=body)
        refusal = self._http_refusal(answer)
        if refusal is not None:
            return refusal
        document = answer.document
        code = codes.error_code(document.get("errorCode"))
        message = wire.text_field(document, "errorMessage", 300) or ""
        if code != codes.NO_ERROR:
            return InitiateResult.refused(
                codes.register_refusal(code, message),
                f"errorCode {document.get('errorCode')}: {message}".strip(),
                document,
            )
        order_id = wire.text_field(document, "orderId", MAX_ORDER_ID + 1)
        form_url = wire.text_field(document, "formUrl", MAX_FORM_URL + 1)
        if (
            order_id is None
            or len(order_id) > MAX_ORDER_ID
            or form_url is None
            or len(form_url) > MAX_FORM_URL
            or not wire.is_page_url(form_url)
        ):
            # Nobody can pay an order whose page we cannot send them to: a refusal.
            return InitiateResult.refused(
                errors.GATEWAY_ERROR, "register.do answered without a usable orderId and formUrl"
            )
        return InitiateResult(
            accepted=True,
            gateway_ref=order_id,
            secondary_ref=body["orderNumber"],
            raw=document,
            next_action=NextAction(type="redirect", url=form_url),
        )

    @staticmethod
    def _http_refusal(answer: Answer) -> InitiateResult | None:
        """None for a 200 with a JSON object; a refusal, or GatewayUnavailable, else."""
        if answer.status in AUTH_STATUSES:
            return InitiateResult.refused(
                errors.GATEWAY_CONFIGURATION, f"register.do answered HTTP {answer.status}"
            )
        if answer.status == 429 or answer.status >= 500:
            raise GatewayUnavailable(
                f"register.do answered HTTP {answer.status}", retry_after_s=answer.retry_after_s()
            )
        if 400 <= answer.status < 500:
            return InitiateResult.refused(
                errors.GATEWAY_REJECTED,
                f"register.do answered HTTP {answer.status}: {answer.text[:200]}",
            )
        if answer.status != 200 or not answer.document:
            raise GatewayUnavailable(f"register.do answered HTTP {answer.status} unreadably")
        return None

    # -- status ----------------------------------------------------------------------------------

    def query_status(self, credentials: ArcaCredentials, gateway_ref: str) -> StatusResult:
        """getOrderStatusExtended.do, the source of truth. Raises GatewayUnavailable otherwise."""
        document = self._status(credentials, gateway_ref)
        code = codes.error_code(document.get("errorCode"))
        message = wire.text_field(document, "errorMessage", 300) or ""
        status = bpc.order_status(document.get("orderStatus"))
        if code == codes.UNKNOWN_ORDER and status is None:
            # Not known to ArCa (yet): still open; the payment window decides.
            verdict = GatewayVerdict(
                outcome=Outcome.PENDING,
                result_code="not_found",
                message=(message or "ArCa does not know this orderId")[:300],
            )
            return StatusResult(gateway_ref, verdict)
        if code == codes.ACCESS_DENIED:
            raise GatewayUnavailable("getOrderStatusExtended.do refused the API login")
        if status is None:
            raise GatewayUnavailable(
                f"getOrderStatusExtended.do answered without an orderStatus (errorCode {code})"
            )
        action = bpc.action_code(document.get("actionCode"))
        meaning = bpc.state_meaning(status, two_step=credentials.two_step, code=action)
        if status in _PAID_STATES and action not in (None, 0):
            meaning = bpc.StateMeaning(
                Outcome.PENDING,
                None,
                f"{meaning.label}:{action}",
                f"orderStatus {status} with actionCode {action}: not read as paid",
            )
        description = wire.text_field(document, "actionCodeDescription", 300)
        succeeded = meaning.outcome is Outcome.SUCCEEDED
        verdict = GatewayVerdict(
            outcome=meaning.outcome,
            result_code=meaning.label[:40],
            failure_code=meaning.failure_code,
            message="; ".join(filter(None, (meaning.message, description)))[:300],
            amount=_amount(document, status) if succeeded else None,
            receipt=_receipt(document),
        )
        return StatusResult(gateway_ref=gateway_ref, verdict=verdict)

    def _status(self, credentials: ArcaCredentials, order_id: str) -> dict[str, Any]:
        """getOrderStatusExtended.do's answer. Raises GatewayUnavailable without one."""
        return bpc.status_document(
            self.http,
            "getOrderStatusExtended.do",
            wire.STATUS_PATH,
            data=wire.status_body(credentials, order_id),
        )

    # -- refunds ---------------------------------------------------------------------------------

    def refund(self, credentials: ArcaCredentials, request: TransferRequest) -> TransferSubmission:
        """refund.do, synchronous: errorCode 0 is the refund's final word.

        Sent once (see :func:`shared.gateways.bpc.send_refund`): a lost answer is
        :class:`GatewayOutcomeUnknown` and :meth:`refund_status` decides by the order's
        refunded total. An HTTP 5xx other than 503 may have acted (unknown); 429 and 503
        say busy (unavailable); a 4xx is a refusal.
        """
        return bpc.send_refund(
            self.http,
            REFUND,
            request,
            lambda order_id: wire.refund_body(credentials, order_id, request.amount),
            lambda document: _refund_answer(request, document),
        )

    def refund_status(
        self, credentials: ArcaCredentials, request: TransferRequest, gateway_ref: str | None
    ) -> TransferVerdict:
        """Whether a refund was made, by ``paymentAmountInfo.refundedAmount`` (see
        :func:`shared.gateways.bpc.refund_by_total`)."""
        return bpc.refund_status(
            REFUND, request, lambda order_id: self._refunded_total(credentials, order_id)
        )

    def _refunded_total(self, credentials: ArcaCredentials, order_id: str) -> Money | None:
        """The order's refunded total; None for an order ArCa does not know (never refunded)."""
        document = self._status(credentials, order_id)
        code = codes.error_code(document.get("errorCode"))
        if code == codes.UNKNOWN_ORDER:
            return None
        if code != codes.NO_ERROR:
            raise GatewayUnavailable(f"getOrderStatusExtended.do answered errorCode {code}")
        return _refunded(document)


def _refund_answer(request: TransferRequest, document: dict[str, Any]) -> TransferSubmission:
    """refund.do's errorCode: 0 done, unreadable unknown, any other a refusal."""
    code = codes.error_code(document.get("errorCode"))
    message = wire.text_field(document, "errorMessage", 300) or ""
    if code == codes.NO_ERROR:
        return bpc.refund_made(request, "0", message, document)
    if code is None:
        raise GatewayOutcomeUnknown("refund.do answered an unreadable errorCode")
    return bpc.refund_refused(
        codes.refund_refusal(code, message),
        f"errorCode {document.get('errorCode')}: {message}".strip(),
        document,
    )


def _refunded(document: Mapping[str, Any]) -> Money:
    """``paymentAmountInfo.refundedAmount`` in luma; unreadable is unavailable, not zero."""
    info = document.get("paymentAmountInfo")
    value = info.get("refundedAmount") if isinstance(info, dict) else None
    if value in (None, ""):
        return Money(0, "AMD")
    luma = _luma(value)
    if luma is None:
        raise GatewayUnavailable("getOrderStatusExtended.do's refundedAmount is unreadable")
    return Money(luma, "AMD")


def _amount(document: Mapping[str, Any], status: int) -> Money | None:
    """What ArCa took, in luma: the deposited amount once deposited, the held one when approved."""
    if str(document.get("currency") or wire.CURRENCY).strip() != wire.CURRENCY:
        log.warning("getOrderStatusExtended names another currency")
        return None
    info = document.get("paymentAmountInfo")
    info = info if isinstance(info, dict) else {}
    named = (
        info.get("depositedAmount")
        if status == bpc.OrderStatus.DEPOSITED
        else info.get("approvedAmount")
        if status == bpc.OrderStatus.APPROVED
        else None
    )
    for value in (named, document.get("amount")):
        if isinstance(value, bool) or value in (None, "", 0):
            continue
        number = _luma(value)
        if number is None:
            log.warning("getOrderStatusExtended amount unreadable")
            return None
        return Money(number, "AMD")
    return None


def _luma(value: object) -> int | None:
    """An amount in luma: a whole number, or its digits as text; None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 15:
        return int(value.strip())
    return None


def _receipt(document: Mapping[str, Any]) -> str | None:
    """The card network's reference (authRefNum), else the authorization's approval code."""
    receipt = wire.text_field(document, "authRefNum", 100)
    if receipt:
        return receipt
    card = document.get("cardAuthInfo")
    return wire.text_field(card, "approvalCode", 100) if isinstance(card, dict) else None
