"""The GU API's wire format (direct collection, check_status) and its mapping to ours.

Paths are module constants because only the push path is confirmed by InTouch's
integrators; check_status's is unverified.
"""

from __future__ import annotations

from typing import Any

from shared.gateways.base import PaymentRequest
from shared.gateways.intouch.credentials import InTouchCredentials
from shared.gateways.intouch.wire import national_number, whole_francs

PUSH_PATH = "/touchpayapi/{agency}/transaction"
CHECK_STATUS_PATH = "/v1/{agency}/check_status"  # unverified


def push_path(credentials: InTouchCredentials) -> str:
    return PUSH_PATH.format(agency=credentials.agency_code)


def check_status_path(credentials: InTouchCredentials) -> str:
    return CHECK_STATUS_PATH.format(agency=credentials.agency_code)


def agent_params(credentials: InTouchCredentials) -> dict[str, str]:
    """The agent login GU wants in the push's query string (never logged: see the transport)."""
    return {
        "loginAgent": credentials.login_agent or "",
        "passwordAgent": credentials.password_agent or "",
    }


def push_body(credentials: InTouchCredentials, request: PaymentRequest) -> dict[str, Any]:
    """The direct collection request; ``idFromClient`` is our order number (the attempt)."""
    customer = request.customer
    recipient = national_number(request.phone)
    return {
        "idFromClient": request.attempt_ref,
        "amount": whole_francs(request.amount),
        "callback": request.callback_url,
        "recipientNumber": recipient,
        "serviceCode": credentials.service_code or "",
        # sic: GU spells it "additionnalInfos".
        "additionnalInfos": {
            "recipientEmail": customer.email or "",
            "recipientFirstName": customer.first_name or "",
            "recipientLastName": customer.last_name or "",
            "destinataire": recipient,
        },
    }


def check_status_body(credentials: InTouchCredentials, order_number: str) -> dict[str, str]:
    return {
        "partner_id": credentials.partner_id,
        "partner_transaction_id": order_number,
        "login_api": credentials.login_api,
        "password_api": credentials.password_api,
    }


def text_field(document: dict[str, Any], *names: str) -> str | None:
    """The first of ``names`` present as text or a number, stripped; None if none is."""
    for name in names:
        value = document.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (str, int, float)):
            text = str(value).strip()
            if text:
                return text[:200]
    return None
