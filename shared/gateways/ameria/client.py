"""The Ameriabank vPOS adapter: InitPayment (the hosted page), GetPaymentDetails, RefundPayment.

No callback exists: after the page, the customer's browser comes back to
malipo's return page (``BackURL``) with query parameters nobody signed, and
malipo asks GetPaymentDetails. That answer is the only word this adapter gives.

InitPayment is sent once (``idempotent=False``): a timeout after sending is
:class:`GatewayOutcomeUnknown`, as the transport decides. An *answer* saying the
bank failed (HTTP 5xx or 429) is :class:`GatewayUnavailable`: whatever Ameria may
have registered then has a PaymentID nobody knows, so no customer can pay it,
and the retry is a new attempt with its own OrderID. Refusals (any
``ResponseCode`` but 1) fail the payment with a catalogue code and Ameria's
message.

Unverified, and decided here: how GetPaymentDetails answers for a PaymentID it
does not know (read as pending, ``not_found``: the payment window ends it, no
money moves on it); that a wrong API login there is ``ResponseCode "20"`` (read
as unavailable, not as a verdict); a paid state with a ResponseCode other than
"00" (contradictory: left pending rather than credited); RefundPayment's refusal
codes (see ``codes``); that ``RefundedAmount`` is the order's running total of
refunds, in drams, at once after a "00" (the refund lookup relies on it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import structlog

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways import bpc
from shared.gateways.ameria import codes, wire
from shared.gateways.ameria.credentials import AmeriaCredentials
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
# A PaymentID is a GUID; anything else that fits a URL's query safely is taken too.
_PAYMENT_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")
_PAID_STATES: Final = frozenset(
    {bpc.OrderStatus.APPROVED, bpc.OrderStatus.DEPOSITED, bpc.OrderStatus.REFUNDED}
)
# A refund answered 4xx was refused before the bank acted; any other odd answer may have
# acted (unknown, settled by the refunded total): the safe reading for money out.
REFUND: Final = bpc.RefundCall(
    "RefundPayment", wire.REFUND_PATH, "Ameria PaymentID", range(400, 500)
)


class AmeriaAdapter:
    """Ameriabank vPOS 3.1: card payments in AMD on Ameria's page."""

    name = "ameria"

    def __init__(self, settings: GatewaySettings) -> None:
        self.http = HttpTransport(self.name, settings)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    # -- every adapter -------------------------------------------------------------------------

    def credentials(self, stored: Mapping[str, Any]) -> AmeriaCredentials:
        return AmeriaCredentials.from_stored(stored)

    def check_amount(self, amount: Money) -> None:
        wire.whole_drams(amount)

    # -- hosted ----------------------------------------------------------------------------------

    def start_hosted(
        self, credentials: AmeriaCredentials, request: PaymentRequest
    ) -> InitiateResult:
        """InitPayment, then the page's URL. Raises GatewayUnavailable or GatewayOutcomeUnknown."""
        if request.return_urls is None:
            return InitiateResult.refused(
                errors.INVALID_REQUEST, "Ameria's page needs a return URL (BackURL)"
            )
        try:
            body = wire.init_body(credentials, request, request.return_urls.success)
        except MalipoError as exc:
            return InitiateResult.refused(exc.error, exc.detail)
        answer = self.http.call("POST", wire.INIT_PATH, idempotent=False, json=body)
        refusal = self._http_refusal(answer)
        if refusal is not None:
            return refusal
        document = answer.document
        code = document.get("ResponseCode")
        message = wire.text_field(document, "ResponseMessage", 300) or ""
        if not codes.is_init_success(code):
            return InitiateResult.refused(
                codes.init_refusal(code), f"ResponseCode {code}: {message}".strip(), document
            )
        payment_id = wire.text_field(document, "PaymentID", 100)
        if payment_id is None or not _PAYMENT_ID.fullmatch(payment_id):
            # Nobody can pay an order whose id we do not have: a refusal, not a mystery.
            return InitiateResult.refused(
                errors.GATEWAY_ERROR, "InitPayment succeeded without a usable PaymentID", document
            )
        return InitiateResult(
            accepted=True,
            gateway_ref=payment_id,
            secondary_ref=str(body["OrderID"]),
            message=message,
            raw=document,
            next_action=NextAction(
                type="redirect", url=wire.pay_page_url(self.http.base_url, payment_id)
            ),
        )

    @staticmethod
    def _http_refusal(answer: Answer) -> InitiateResult | None:
        """None for a 200 with a JSON object; a refusal, or GatewayUnavailable, else."""
        if answer.status in AUTH_STATUSES:
            return InitiateResult.refused(
                errors.GATEWAY_CONFIGURATION, f"InitPayment answered HTTP {answer.status}"
            )
        if answer.status == 429 or answer.status >= 500:
            raise GatewayUnavailable(
                f"InitPayment answered HTTP {answer.status}", retry_after_s=answer.retry_after_s()
            )
        if 400 <= answer.status < 500:
            detail = wire.text_field(answer.document, "ResponseMessage", 200) or answer.text[:200]
            return InitiateResult.refused(
                errors.GATEWAY_REJECTED, f"InitPayment answered HTTP {answer.status}: {detail}"
            )
        if answer.status != 200 or not answer.document:
            raise GatewayUnavailable(f"InitPayment answered HTTP {answer.status} unreadably")
        return None

    # -- status ----------------------------------------------------------------------------------

    def query_status(self, credentials: AmeriaCredentials, gateway_ref: str) -> StatusResult:
        """GetPaymentDetails, the source of truth. Raises GatewayUnavailable without an answer."""
        document = self._details(credentials, gateway_ref)
        response_code = wire.text_field(document, "ResponseCode", 20)
        message = wire.text_field(document, "ResponseMessage", 300) or ""
        status = bpc.order_status(document.get("OrderStatus"))
        if status is None:
            return StatusResult(gateway_ref, self._no_order(response_code, message))
        meaning = bpc.state_meaning(
            status,
            two_step=credentials.two_step,
            code=codes.decline_action_code(response_code),
        )
        if status in _PAID_STATES and response_code not in (None, codes.APPROVED):
            meaning = bpc.StateMeaning(
                Outcome.PENDING,
                None,
                f"{meaning.label}:{response_code}",
                f"OrderStatus {status} with ResponseCode {response_code}: not read as paid",
            )
        succeeded = meaning.outcome is Outcome.SUCCEEDED
        verdict = GatewayVerdict(
            outcome=meaning.outcome,
            result_code=meaning.label[:40],
            failure_code=meaning.failure_code,
            message="; ".join(filter(None, (meaning.message, message)))[:300],
            amount=_amount(document, status) if succeeded else None,
            receipt=wire.text_field(document, "rrn", 100)
            or wire.text_field(document, "ApprovalCode", 100),
        )
        return StatusResult(gateway_ref=gateway_ref, verdict=verdict)

    def _details(self, credentials: AmeriaCredentials, payment_id: str) -> dict[str, Any]:
        """GetPaymentDetails' answer. Raises GatewayUnavailable without one."""
        return bpc.status_document(
            self.http,
            "GetPaymentDetails",
            wire.DETAILS_PATH,
            json=wire.details_body(credentials, payment_id),
        )

    # -- refunds ---------------------------------------------------------------------------------

    def refund(
        self, credentials: AmeriaCredentials, request: TransferRequest
    ) -> TransferSubmission:
        """RefundPayment, synchronous: ``"00"`` is the refund's final word.

        Sent once (see :func:`shared.gateways.bpc.send_refund`): a lost answer is
        :class:`GatewayOutcomeUnknown` and :meth:`refund_status` decides by the order's
        refunded total. An HTTP 5xx other than 503 may have acted (unknown); 429 and 503
        say busy (unavailable); a 4xx is a refusal.
        """
        return bpc.send_refund(
            self.http,
            REFUND,
            request,
            lambda payment_id: wire.refund_body(credentials, payment_id, request.amount),
            lambda document: _refund_answer(request, document),
            lambda answer: wire.text_field(answer.document, "Message", 200) or answer.text[:200],
        )

    def refund_status(
        self, credentials: AmeriaCredentials, request: TransferRequest, gateway_ref: str | None
    ) -> TransferVerdict:
        """Whether a refund was made, by GetPaymentDetails' ``RefundedAmount`` (see
        :func:`shared.gateways.bpc.refund_by_total`)."""
        return bpc.refund_status(
            REFUND, request, lambda payment_id: self._refunded_total(credentials, payment_id)
        )

    def _refunded_total(self, credentials: AmeriaCredentials, payment_id: str) -> Money | None:
        """The order's refunded total; None for an order Ameria does not know (never refunded)."""
        document = self._details(credentials, payment_id)
        if bpc.order_status(document.get("OrderStatus")) is None:
            self._no_order(wire.text_field(document, "ResponseCode", 20), "")
            return None
        return _refunded(document)

    @staticmethod
    def _no_order(response_code: str | None, message: str) -> GatewayVerdict:
        """An answer without an OrderStatus: an unknown payment, or no answer at all."""
        if response_code == codes.UNKNOWN_ORDER:
            # Not known to Ameria (yet): still open; the payment window decides.
            return GatewayVerdict(
                outcome=Outcome.PENDING,
                result_code="not_found",
                message=(message or "Ameria does not know this PaymentID")[:300],
            )
        if response_code == codes.WRONG_LOGIN:
            raise GatewayUnavailable("GetPaymentDetails refused the API login (ResponseCode 20)")
        raise GatewayUnavailable(
            f"GetPaymentDetails answered without an OrderStatus (ResponseCode {response_code})"
        )


def _refund_answer(request: TransferRequest, document: dict[str, Any]) -> TransferSubmission:
    """RefundPayment's ResponseCode: "00" done, a system error unknown, any other a refusal."""
    code = wire.text_field(document, "ResponseCode", 20)
    message = wire.text_field(document, "ResponseMessage", 300) or ""
    if code == codes.APPROVED:
        return bpc.refund_made(request, code, message, document)
    if code is None or code in codes.REFUND_SYSTEM_ERRORS:
        raise GatewayOutcomeUnknown(f"RefundPayment answered ResponseCode {code}: {message}")
    return bpc.refund_refused(
        codes.refund_refusal(code), f"ResponseCode {code}: {message}".strip(), document
    )


def _refunded(document: Mapping[str, Any]) -> Money:
    """GetPaymentDetails' ``RefundedAmount`` (drams); unreadable is unavailable, not zero."""
    value = document.get("RefundedAmount")
    if value in (None, ""):
        return Money(0, "AMD")
    try:
        return Money.parse_major(value, "AMD")
    except MalipoError:
        raise GatewayUnavailable("GetPaymentDetails' RefundedAmount is unreadable") from None


def _amount(document: Mapping[str, Any], status: int) -> Money | None:
    """What Ameria took: the deposited amount once deposited, the held one when approved."""
    currency = document.get("Currency")
    if currency not in (None, "", wire.CURRENCY, "AMD"):
        log.warning("GetPaymentDetails names another currency", currency=str(currency)[:10])
        return None
    first = {
        bpc.OrderStatus.DEPOSITED: "DepositedAmount",
        bpc.OrderStatus.APPROVED: "ApprovedAmount",
    }
    names = [first[bpc.OrderStatus(status)]] if status in first else []
    for name in [*names, "Amount"]:
        value = document.get(name)
        if value in (None, "", 0):
            continue
        try:
            return Money.parse_major(value, "AMD")
        except MalipoError:
            log.warning("GetPaymentDetails amount unreadable", field=name)
            return None
    return None
