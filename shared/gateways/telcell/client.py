"""The Telcell Money adapter: the signed invoice link, and the signed result.

Starting a payment calls nobody: malipo sends the browser to Telcell's invoice
link (``NextAction`` "redirect"), signed with the shop key. The customer pays (or
refuses) on Telcell's page; Telcell posts the result to the URL in its cabinet, and
the worker checks its checksum with the shop key (``SignedCallbacks``) before
anything is applied. Telcell has no status API: nothing is confirmed before credit.

Unverified (see :mod:`shared.gateways.telcell.wire`): the statuses besides ``PAID``
and the shapes of ``sum`` and ``time``.
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
)
from shared.gateways.description import GatewaySettings
from shared.gateways.telcell import callbacks
from shared.gateways.telcell.credentials import TelcellCredentials
from shared.gateways.telcell.wire import invoice_params, invoice_url, whole_drams

# Telcell documents no reply body; plain "OK" is what its integrators answer.
ACKNOWLEDGEMENT = CallbackReply.text("OK")


class TelcellAdapter:
    """Telcell Money wallet payments in AMD, on Telcell's own page."""

    name = "telcell"

    def __init__(self, settings: GatewaySettings) -> None:
        self.base_url = settings.base_url.rstrip("/")

    # -- every adapter -------------------------------------------------------------------------

    def credentials(self, stored: Mapping[str, Any]) -> TelcellCredentials:
        return TelcellCredentials.from_stored(stored)

    def check_amount(self, amount: Money) -> None:
        whole_drams(amount)

    # -- hosted ------------------------------------------------------------------------------------

    def start_hosted(
        self, credentials: TelcellCredentials, request: PaymentRequest
    ) -> InitiateResult:
        """The signed invoice link; no gateway call (nothing to retry or lose)."""
        try:
            params = invoice_params(
                credentials.shop_id, credentials.shop_key, credentials.language, request
            )
        except MalipoError as exc:
            return InitiateResult.refused(exc.error, exc.detail)
        return InitiateResult(
            accepted=True,
            gateway_ref=request.attempt_ref,
            next_action=NextAction(type="redirect", url=invoice_url(self.base_url, params)),
        )

    # -- callbacks ---------------------------------------------------------------------------------

    def authenticate_callback(
        self, verifiers: Mapping[str, str], inbound: InboundCallback
    ) -> str | None:
        """Nothing to check at the ingress: a result names no shop, and its proof needs the key."""
        return None

    def verify_callback(
        self, credentials: TelcellCredentials, inbound: InboundCallback
    ) -> str | None:
        """``checksum`` recomputed with the shop key, compared in constant time."""
        return callbacks.verify_checksum(credentials, inbound)

    def parse_callback(self, inbound: InboundCallback) -> CallbackEvent:
        return callbacks.read_result(inbound)

    def acknowledgement(self, inbound: InboundCallback) -> CallbackReply:
        return ACKNOWLEDGEMENT
