"""The FastShift adapter: register an order, send the customer to its page, ask its status.

The flow (Pay by FastShift v1.0): malipo registers an order under the attempt's
reference (``order_number``, a GUID); FastShift answers the URL of its page; the
customer's browser goes there, the customer confirms in the FastShift app; FastShift
sends the browser to ``callback_url`` (malipo's return page) and, server to server,
a webhook with ``status`` and ``order_number`` to ``webhook_url`` (malipo's callback
URL for the attempt). Nothing is signed, so ``order/status`` is the source of truth.

Re-sending and failures:

* register is not idempotent (a second register of the same order number is an
  error at best): it is sent with ``idempotent=False``, so an answer lost after
  sending is :class:`GatewayOutcomeUnknown` and the attempt is never re-sent;
* an explicit 5xx or 429 answer to register is :class:`GatewayUnavailable`: it
  carries no ``redirect_url``, and without that URL no customer can reach the
  order's page, so nothing can be paid on it; the retry is a new attempt with a new
  order number, which cannot charge twice;
* 401/403 are a ``gateway_configuration`` refusal (the merchant's token); 422
  ``INVALID_DATA`` on ``amount`` is ``amount_out_of_range``, any other 4xx
  ``gateway_rejected``; a 2xx without a usable ``redirect_url`` is ``gateway_error``
  (again: no page, no payment);
* ``order/status`` is idempotent; an order FastShift does not know (404) is still
  PENDING (a register whose answer was lost may never have arrived), and any answer
  that is not a verdict is :class:`GatewayUnavailable`.

Unverified: the shape and content type of the webhook (JSON and forms are read),
the reply FastShift expects to it (``ACKNOWLEDGEMENT``), whether FastShift retries
it, and whether an expiry is announced by webhook at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import structlog

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.base import (
    CallbackEvent,
    CallbackReply,
    GatewayUnavailable,
    GatewayVerdict,
    InboundCallback,
    InitiateResult,
    NextAction,
    Outcome,
    PaymentRequest,
    StatusResult,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.fastshift import codes, wire
from shared.gateways.fastshift.callbacks import parse_fastshift_callback
from shared.gateways.fastshift.credentials import FastShiftCredentials
from shared.gateways.transport import Answer, HttpTransport

log = structlog.stdlib.get_logger(__name__)

# FastShift documents no reply to its webhook. Its own answers say {"status": "OK"}
# with HTTP 200, and integrators answer a bare 200: this is both.
ACKNOWLEDGEMENT: Final = CallbackReply.json({"status": "OK"})


class FastShiftAdapter:
    """Pay by FastShift (Armenia): a hosted page in AMD, the status API, webhooks."""

    name = "fastshift"

    def __init__(self, settings: GatewaySettings) -> None:
        self.http = HttpTransport(self.name, settings)

    # -- every adapter -------------------------------------------------------------------------

    def credentials(self, stored: Mapping[str, Any]) -> FastShiftCredentials:
        return FastShiftCredentials.from_stored(stored)

    def check_amount(self, amount: Money) -> None:
        wire.whole_drams(amount)

    # -- hosted --------------------------------------------------------------------------------

    def start_hosted(
        self, credentials: FastShiftCredentials, request: PaymentRequest
    ) -> InitiateResult:
        """Register the order; the next action is a redirect to FastShift's page.

        Raises GatewayUnavailable (not registered) or GatewayOutcomeUnknown (maybe registered).
        """
        if request.return_urls is None:
            return InitiateResult.refused(
                errors.INVALID_REQUEST, "FastShift needs a return URL (its callback_url)"
            )
        try:
            body = wire.register_body(request, request.return_urls.success)
        except MalipoError as exc:
            return InitiateResult.refused(exc.error, exc.detail)
        answer = self.http.call(
            "POST",
            wire.REGISTER_PATH,
            idempotent=False,
            json=body,
            headers=credentials.bearer(),
        )
        if 200 <= answer.status < 300:
            return self._registered(answer, request)
        return self._register_refusal(answer)

    def _registered(self, answer: Answer, request: PaymentRequest) -> InitiateResult:
        document = answer.document
        redirect_url = wire.redirect_url_of(document)
        if redirect_url is None:
            return InitiateResult.refused(
                errors.GATEWAY_ERROR,
                f"register answered HTTP {answer.status} without a redirect_url",
                document,
            )
        order = wire.order_of(document)
        echoed = wire.text_field(order, "order_number")
        if echoed is not None and echoed.lower() != request.attempt_ref.lower():
            log.warning("fastshift echoed another order_number", sent=request.attempt_ref)
        return InitiateResult(
            accepted=True,
            gateway_ref=request.attempt_ref,
            secondary_ref=wire.text_field(order, "order_guid"),
            message=wire.text_field(order, "status") or "pending",
            raw=document,
            next_action=NextAction(type="redirect", url=redirect_url),
        )

    def _register_refusal(self, answer: Answer) -> InitiateResult:
        document = answer.document
        message = wire.error_message(document, answer.text or f"HTTP {answer.status}")
        said = f"HTTP {answer.status} {wire.text_field(document, 'status') or ''}".rstrip()
        if answer.status in codes.BUSY_STATUSES or answer.status >= 500:
            raise GatewayUnavailable(
                f"FastShift register: {said}: {message}", retry_after_s=answer.retry_after_s()
            )
        if answer.status in codes.AUTH_STATUSES:
            return InitiateResult.refused(
                errors.GATEWAY_CONFIGURATION,
                f"{said}: FastShift refused the merchant's api_token ({message})",
                document,
            )
        if answer.status == 422 and "amount" in wire.field_errors(document):
            return InitiateResult.refused(
                errors.AMOUNT_OUT_OF_RANGE, f"{said}: {message}", document
            )
        # 400 ERROR, 404, 409, 422 on other fields, or a 3xx no client should have seen.
        return InitiateResult.refused(errors.GATEWAY_REJECTED, f"{said}: {message}", document)

    # -- status --------------------------------------------------------------------------------

    def query_status(self, credentials: FastShiftCredentials, gateway_ref: str) -> StatusResult:
        """``order/status`` for our order number. Raises GatewayUnavailable without a verdict."""
        answer = self.http.call(
            "GET",
            wire.status_path(gateway_ref),
            idempotent=True,
            headers=credentials.bearer(),
        )
        if answer.status == 404:
            # Not (yet) known: a register whose answer was lost may never have arrived.
            verdict = GatewayVerdict(Outcome.PENDING, "not_found", message="order not found")
            return StatusResult(gateway_ref=gateway_ref, verdict=verdict)
        if answer.status in codes.AUTH_STATUSES:
            raise GatewayUnavailable(
                f"FastShift order/status refused the api_token (HTTP {answer.status})"
            )
        order = wire.order_of(answer.document)
        status = wire.text_field(order, "status")
        if answer.status != 200 or status is None:
            raise GatewayUnavailable(f"FastShift order/status answered HTTP {answer.status}")
        return StatusResult(gateway_ref=gateway_ref, verdict=status_verdict(order, status))

    # -- callbacks -----------------------------------------------------------------------------

    def authenticate_callback(
        self, verifiers: Mapping[str, str], inbound: InboundCallback
    ) -> str | None:
        """Nothing to check: FastShift's webhook carries no secret and no signature.

        The path secret (checked by the ingress) is the only proof of origin; the status
        API confirms every success before credit (``confirm_before_credit``).
        """
        return None

    def parse_callback(self, inbound: InboundCallback) -> CallbackEvent:
        return parse_fastshift_callback(inbound)

    def acknowledgement(self, inbound: InboundCallback) -> CallbackReply:
        return ACKNOWLEDGEMENT


def status_verdict(order: Mapping[str, Any], status: str) -> GatewayVerdict:
    """What ``data.order`` says: its status, amount (whole drams) and FastShift's order id."""
    word = codes.normalised(status)
    meaning = codes.meaning(word)
    completed_at = wire.text_field(order, "completed_at")
    return GatewayVerdict(
        outcome=meaning.outcome,
        result_code=word,
        failure_code=meaning.failure_code,
        message=f"FastShift order {word}" + (f" at {completed_at}" if completed_at else ""),
        amount=wire.drams_to_money(order.get("amount")),
        receipt=wire.text_field(order, "order_guid"),
    )
