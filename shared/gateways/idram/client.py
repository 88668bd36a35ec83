"""The Idram adapter: the payment form, the precheck, and the signed confirmation.

Starting a payment calls nobody: malipo hands the browser the form to post to
Idram's ``/Payment/GetPayment`` (``NextAction`` "form_post"), and Idram, not the
form, decides where the customer returns and where results go (the merchant's
cabinet). The attempt's reference is the bill number, and the attempt's gateway
reference.

Money is only ever reported by the confirmation, whose checksum the worker checks
with the merchant's secret key (``SignedCallbacks``); Idram has no status API, so
nothing is confirmed before credit, and a customer who gives up sends nothing
(the payment window expires it).

Unverified: whether anything but ``OK`` refuses a precheck (Idram's text says only
that ``OK`` accepts; the refusal here is ``NO``), and whether Idram's page shows
the customer why a refused precheck stopped the payment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.domain.errors import MalipoError
from shared.domain.money import Money
from shared.gateways.base import (
    CallbackEvent,
    CallbackReply,
    InboundCallback,
    InitiateResult,
    NextAction,
    PaymentRequest,
    Precheck,
)
from shared.gateways.description import GatewaySettings
from shared.gateways.idram import callbacks
from shared.gateways.idram.credentials import IdramCredentials
from shared.gateways.idram.wire import PAYMENT_PATH, payment_form, whole_drams

# Idram reads the body of its calls, not the status: "OK" accepts, anything else refuses.
ACKNOWLEDGEMENT = CallbackReply.text("OK")
PRECHECK_YES = CallbackReply.text("OK")
PRECHECK_NO = CallbackReply.text("NO", status=200)


class IdramAdapter:
    """Idram wallet payments in AMD, on Idram's own page."""

    name = "idram"

    def __init__(self, settings: GatewaySettings) -> None:
        self.payment_url = settings.base_url.rstrip("/") + PAYMENT_PATH

    # -- every adapter -------------------------------------------------------------------------

    def credentials(self, stored: Mapping[str, Any]) -> IdramCredentials:
        return IdramCredentials.from_stored(stored)

    def check_amount(self, amount: Money) -> None:
        whole_drams(amount)

    # -- hosted ------------------------------------------------------------------------------------

    def start_hosted(
        self, credentials: IdramCredentials, request: PaymentRequest
    ) -> InitiateResult:
        """The form the browser posts to Idram; no gateway call (nothing to retry or lose)."""
        try:
            fields = payment_form(credentials.rec_account, credentials.language, request)
        except MalipoError as exc:
            return InitiateResult.refused(exc.error, exc.detail)
        return InitiateResult(
            accepted=True,
            gateway_ref=request.attempt_ref,
            next_action=NextAction(type="form_post", url=self.payment_url, fields=fields),
        )

    # -- callbacks ---------------------------------------------------------------------------------

    def authenticate_callback(
        self, verifiers: Mapping[str, str], inbound: InboundCallback
    ) -> str | None:
        """The callback names the merchant's own Idram ID (compared as hashes, in constant time)."""
        return callbacks.check_account(verifiers, inbound)

    def precheck(self, inbound: InboundCallback) -> Precheck | None:
        return callbacks.read_precheck(inbound)

    def precheck_reply(self, bill_is_good: bool) -> CallbackReply:
        return PRECHECK_YES if bill_is_good else PRECHECK_NO

    def verify_callback(
        self, credentials: IdramCredentials, inbound: InboundCallback
    ) -> str | None:
        """``EDP_CHECKSUM`` recomputed with the merchant's secret key, compared in constant time."""
        return callbacks.verify_checksum(credentials, inbound)

    def parse_callback(self, inbound: InboundCallback) -> CallbackEvent:
        return callbacks.read_confirmation(inbound)

    def acknowledgement(self, inbound: InboundCallback) -> CallbackReply:
        return ACKNOWLEDGEMENT
