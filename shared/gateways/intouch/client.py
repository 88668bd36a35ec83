"""The InTouch adapter: TouchPay's hosted flow, GU direct collection, check_status, callbacks.

What is unverified (no official sample confirms it), and where it can be changed:

* the TouchPay SDK's script URL (``touchpay.SDK_URL``, or ``InTouchAdapter(sdk_url=...)``);
* check_status's path and answer shape (``gu.CHECK_STATUS_PATH``, ``codes``);
* which login HTTP Digest uses (``digest_auth`` below: the API login);
* that ``clientPhone`` and ``recipientNumber`` want national numbers (``wire.national_number``);
* the GU callback's shape, and TouchPay ``payment_status`` values other than "200".

Money moves on a push only: it is not idempotent at InTouch (``idFromClient`` is
not documented as a dedupe key), so an answer lost after sending is
:class:`GatewayOutcomeUnknown` (the transport decides) and the attempt is
never re-sent; check_status is always safe to repeat. A hosted start calls
nobody: the customer's browser talks to TouchPay.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from requests.auth import HTTPDigestAuth

from shared.domain import errors
from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.base import (
    CallbackEvent,
    CallbackReply,
    GatewayOutcomeUnknown,
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
from shared.gateways.intouch import codes, gu, touchpay
from shared.gateways.intouch.callbacks import check_basic, parse_intouch_callback
from shared.gateways.intouch.credentials import InTouchCredentials
from shared.gateways.intouch.wire import whole_francs
from shared.gateways.transport import Answer, HttpTransport

log = structlog.stdlib.get_logger(__name__)

# InTouch documents no reply body for either callback; its senders look at the status
# only. Plain "OK" is the smallest answer every HTTP client reads as accepted, without
# assuming that a GET's sender parses JSON.
ACKNOWLEDGEMENT = CallbackReply.text("OK")
# Answers that mean "busy, nothing done": safe to retry. Other 5xx may have been acted on.
BUSY_STATUSES = frozenset({429, 503})
AUTH_STATUSES = frozenset({401, 403})


def digest_auth(credentials: InTouchCredentials) -> HTTPDigestAuth:
    """The HTTP Digest login of GU calls: the API login (unverified; the one place to change).

    A new object per call: HTTPDigestAuth keeps per-thread challenge state, and a
    fresh one answers the server's challenge without replaying an old nonce.
    """
    return HTTPDigestAuth(credentials.login_api, credentials.password_api)


class InTouchAdapter:
    """InTouch Group (TouchPay / GU) collections in XOF and XAF."""

    name = "intouch"

    def __init__(self, settings: GatewaySettings, *, sdk_url: str = touchpay.SDK_URL) -> None:
        self.http = HttpTransport(self.name, settings)
        self.sdk_url = sdk_url

    # -- every adapter -------------------------------------------------------------------------

    def credentials(self, stored: Mapping[str, Any]) -> InTouchCredentials:
        return InTouchCredentials.from_stored(stored)

    def check_amount(self, amount: Money) -> None:
        whole_francs(amount)

    # -- hosted (TouchPay) -----------------------------------------------------------------------

    def start_hosted(
        self, credentials: InTouchCredentials, request: PaymentRequest
    ) -> InitiateResult:
        """The SDK call the front end makes; no gateway call (nothing to retry or lose)."""
        if request.return_urls is None:
            return InitiateResult.refused(
                errors.INVALID_REQUEST, "TouchPay needs return URLs for success and failure"
            )
        try:
            parameters = touchpay.sdk_parameters(credentials, request, request.return_urls)
        except MalipoError as exc:
            return InitiateResult.refused(exc.error, exc.detail)
        return InitiateResult(
            accepted=True,
            gateway_ref=request.attempt_ref,
            next_action=NextAction(type="sdk", url=self.sdk_url, parameters=parameters),
        )

    # -- push (GU direct collection) -------------------------------------------------------------

    def push(self, credentials: InTouchCredentials, request: PaymentRequest) -> InitiateResult:
        """Ask GU to collect from the phone. Raises GatewayUnavailable or GatewayOutcomeUnknown."""
        if not credentials.can_push:
            return InitiateResult.refused(
                errors.GATEWAY_CONFIGURATION,
                "GU push needs login_agent, password_agent and service_code",
            )
        answer = self.http.call(
            "PUT",
            gu.push_path(credentials),
            idempotent=False,
            json=gu.push_body(credentials, request),
            params=gu.agent_params(credentials),
            auth=digest_auth(credentials),
        )
        if answer.status in AUTH_STATUSES:
            return self._refused(answer, errors.GATEWAY_CONFIGURATION)
        if answer.status in BUSY_STATUSES:
            raise GatewayUnavailable(
                f"GU busy: HTTP {answer.status}", retry_after_s=answer.retry_after_s()
            )
        if answer.status >= 500:
            raise GatewayOutcomeUnknown(f"GU push answered HTTP {answer.status}")
        if 400 <= answer.status < 500:
            return self._refused(answer, errors.GATEWAY_REJECTED)
        return self._push_answer(answer, request)

    def _push_answer(self, answer: Answer, request: PaymentRequest) -> InitiateResult:
        document = answer.document
        status = (gu.text_field(document, "status") or "").upper()
        if 200 <= answer.status < 300 and status in codes.PUSH_ACCEPTED:
            return InitiateResult(
                accepted=True,
                gateway_ref=gu.text_field(document, "idFromClient") or request.attempt_ref,
                secondary_ref=gu.text_field(document, "idFromGU"),
                message=status,
                raw=document,
            )
        if status in codes.PUSH_REFUSED:
            return self._refused(answer, errors.GATEWAY_REJECTED)
        # A 2xx or 3xx we cannot read: GU may have created the transaction.
        raise GatewayOutcomeUnknown(f"GU push answered HTTP {answer.status} status {status!r}")

    def _refused(self, answer: Answer, failure: errors.ErrorCode) -> InitiateResult:
        message = gu.text_field(answer.document, "message", "detail", "error") or answer.text[:200]
        return InitiateResult.refused(failure, f"HTTP {answer.status}: {message}", answer.document)

    # -- status ------------------------------------------------------------------------------------

    def query_status(self, credentials: InTouchCredentials, gateway_ref: str) -> StatusResult:
        """check_status for our order number. Raises GatewayUnavailable when there is no answer."""
        answer = self.http.call(
            "POST",
            gu.check_status_path(credentials),
            idempotent=True,
            json=gu.check_status_body(credentials, gateway_ref),
            auth=digest_auth(credentials),
        )
        if answer.status in AUTH_STATUSES:
            raise GatewayUnavailable(f"check_status refused the API login (HTTP {answer.status})")
        document = answer.document
        code = gu.text_field(document, "code", "status_code") or (
            str(answer.status) if answer.status in (201, 203, 300) else None
        )
        status_word = gu.text_field(document, "status")
        meaning = codes.check_status_meaning(code, status_word)
        if meaning is None and codes.is_not_found(answer.status, code, status_word):
            # Not (yet) known to InTouch: the customer has not submitted TouchPay's page,
            # or a push never arrived. Still open; the payment window decides.
            meaning, code = codes.PENDING, "not_found"
        if meaning is None:
            raise GatewayUnavailable(f"check_status answered HTTP {answer.status} unreadably")
        final = meaning.outcome is not Outcome.PENDING
        verdict = GatewayVerdict(
            outcome=meaning.outcome,
            result_code=code or str(status_word),
            failure_code=meaning.failure_code,
            message=(gu.text_field(document, "message") or "")[:300],
            amount=self._amount(credentials, document) if final else None,
            receipt=gu.text_field(document, "gu_transaction_id", "payment_token"),
        )
        return StatusResult(gateway_ref=gateway_ref, verdict=verdict)

    @staticmethod
    def _amount(credentials: InTouchCredentials, document: Mapping[str, Any]) -> Money | None:
        """The answer's amount in the agency's currency; None when either is unknown."""
        value = document.get("amount")
        if credentials.currency is None or value in (None, ""):
            return None
        try:
            return Money.parse_major(value, credentials.currency)
        except MalipoError:
            log.warning("check_status amount unreadable", agency=credentials.agency_code)
            return None

    # -- callbacks ---------------------------------------------------------------------------------

    def authenticate_callback(
        self, verifiers: Mapping[str, str], inbound: InboundCallback
    ) -> str | None:
        """InTouch's HTTP Basic credentials for this merchant, compared in constant time."""
        return check_basic(verifiers, inbound.headers.get("authorization"))

    def parse_callback(self, inbound: InboundCallback) -> CallbackEvent:
        return parse_intouch_callback(inbound)

    def acknowledgement(self, inbound: InboundCallback) -> CallbackReply:
        return ACKNOWLEDGEMENT
