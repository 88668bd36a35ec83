"""The IntaSend adapter: M-Pesa STK push, the status query, collection webhooks.

IntaSend's STK push has no idempotency key (reference): a push whose answer was
lost is never re-sent (:class:`GatewayOutcomeUnknown`); only the status query
is always safe to repeat. IntaSend takes no callback URL per request: webhooks
go to the URL set in the merchant's dashboard, with the challenge stored here,
so ``PaymentRequest.callback_url`` is not sent.

Unverified in the reference, and so decided conservatively here: which
statuses mean IntaSend did not act (only 429 and 503 are taken as "busy"; any
other 5xx after sending may have pushed), and whether a 404 on a push means a
wrong base URL or wallet (taken as configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.base import (
    CallbackEvent,
    CallbackReply,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    InboundCallback,
    InitiateResult,
    PaymentRequest,
    StatusResult,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.intasend.transformers import (
    PUBLIC_KEY_HEADER,
    IntaSendCredentials,
    InvoiceUnreadable,
    error_text,
    invoice_id_of,
    invoice_verdict,
    status_body,
    stk_push_body,
)
from shared.gateways.intasend.webhooks import challenge_refusal, parse_collection_webhook
from shared.gateways.transport import Answer, HttpTransport

STK_PUSH_PATH: Final = "payment/mpesa-stk-push/"
STATUS_PATH: Final = "payment/status/"
MIN_KES_MINOR: Final = 1_00
MAX_KES_MINOR: Final = 150_000_00  # IntaSend's per-transaction limit
BUSY_STATUSES: Final = frozenset({429, 503})
CONFIGURATION_STATUSES: Final = frozenset({401, 403, 404})
ACKNOWLEDGEMENT: Final = CallbackReply.json({"status": "received"})


class IntaSendAdapter:
    """IntaSend (M-Pesa STK push collections in KES)."""

    name = "intasend"

    def __init__(self, settings: GatewaySettings) -> None:
        self.http = HttpTransport(self.name, settings)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    # -- every adapter ---------------------------------------------------------------------

    def credentials(self, stored: Mapping[str, Any]) -> IntaSendCredentials:
        return IntaSendCredentials.from_stored(stored)

    def check_amount(self, amount: Money) -> None:
        """KES 1 to 150,000 in whole shillings (M-Pesa charges no cents)."""
        if amount.currency != "KES":
            raise MalipoError(errors.INVALID_CURRENCY, "IntaSend M-Pesa takes KES only")
        if amount.amount_minor % 100:
            raise MalipoError(errors.INVALID_AMOUNT, "M-Pesa takes whole shillings only")
        if not MIN_KES_MINOR <= amount.amount_minor <= MAX_KES_MINOR:
            raise MalipoError(errors.AMOUNT_OUT_OF_RANGE, "IntaSend takes KES 1 to 150,000")

    # -- push ------------------------------------------------------------------------------

    def push(self, credentials: IntaSendCredentials, request: PaymentRequest) -> InitiateResult:
        """Send one STK push. Raises GatewayUnavailable (safe to retry) or GatewayOutcomeUnknown."""
        answer = self.http.call(
            "POST",
            STK_PUSH_PATH,
            idempotent=False,
            json=stk_push_body(credentials, request),
            headers=credentials.api_headers(),
        )
        if answer.status in (200, 201):
            return self._accepted(answer)
        return self._push_refusal(answer)

    def _accepted(self, answer: Answer) -> InitiateResult:
        invoice = answer.document.get("invoice")
        try:
            invoice_id = invoice_id_of(invoice if isinstance(invoice, dict) else {})
        except InvoiceUnreadable:
            raise GatewayOutcomeUnknown(
                f"push answered HTTP {answer.status} without an invoice_id"
            ) from None
        api_ref = invoice.get("api_ref") if isinstance(invoice, dict) else None
        return InitiateResult(
            accepted=True,
            gateway_ref=invoice_id,
            secondary_ref=str(api_ref)[:100] if api_ref else None,
            message=str(invoice.get("state") or "") if isinstance(invoice, dict) else "",
            raw=answer.document,
        )

    def _push_refusal(self, answer: Answer) -> InitiateResult:
        message = error_text(answer.document) or f"HTTP {answer.status}"
        if answer.status in BUSY_STATUSES:
            raise GatewayUnavailable(
                f"IntaSend busy (HTTP {answer.status}): {message}",
                retry_after_s=answer.retry_after_s(),
            )
        if answer.status >= 500 or answer.status < 400:
            raise GatewayOutcomeUnknown(f"push answered HTTP {answer.status}: {message}")
        failure = (
            errors.GATEWAY_CONFIGURATION
            if answer.status in CONFIGURATION_STATUSES
            else errors.GATEWAY_REJECTED
        )
        return InitiateResult.refused(failure, f"HTTP {answer.status}: {message}", answer.document)

    # -- status ----------------------------------------------------------------------------

    def query_status(self, credentials: IntaSendCredentials, gateway_ref: str) -> StatusResult:
        """``payment/status/``, the source of truth. Any answer but an invoice is unavailable."""
        answer = self.http.call(
            "POST",
            STATUS_PATH,
            idempotent=True,
            json=status_body(credentials, gateway_ref),
            headers={PUBLIC_KEY_HEADER: credentials.publishable_key},
        )
        invoice = answer.document.get("invoice")
        if answer.status != 200 or not isinstance(invoice, dict):
            detail = error_text(answer.document) or "no invoice in the answer"
            raise GatewayUnavailable(
                f"status answered HTTP {answer.status}: {detail}",
                retry_after_s=answer.retry_after_s(),
            )
        try:
            if invoice_id_of(invoice) != gateway_ref:
                raise InvoiceUnreadable("the answer is about another invoice")
            verdict = invoice_verdict(invoice)
        except InvoiceUnreadable as exc:
            raise GatewayUnavailable(f"status answer unreadable: {exc}") from None
        return StatusResult(gateway_ref=gateway_ref, verdict=verdict)

    # -- callbacks -------------------------------------------------------------------------

    def authenticate_callback(
        self, verifiers: Mapping[str, str], inbound: InboundCallback
    ) -> str | None:
        """The body's challenge against its stored hash: None, or why it is refused."""
        return challenge_refusal(verifiers, inbound)

    def parse_callback(self, inbound: InboundCallback) -> CallbackEvent:
        return parse_collection_webhook(inbound.body)

    def acknowledgement(self, inbound: InboundCallback) -> CallbackReply:
        return ACKNOWLEDGEMENT
