"""Ameriabank vPOS 3.1's wire: InitPayment, GetPaymentDetails and RefundPayment bodies, the page.

From Ameria's "vPOS 3.1 API Protocol Description": JSON bodies, the API login in
each; ``Amount`` a decimal of drams, ``Currency`` ISO numeric (``"051"``, the
default), ``OrderID`` an integer unique per merchant. The customer's page is
``{base}/Payments/Pay?id=<PaymentID>&lang=am|ru|en``; afterwards the browser goes
to ``BackURL`` with ``orderID``, ``resposneCode`` (sic), ``paymentID`` and
``opaque``, none of it signed: only GetPaymentDetails is believed.

The OrderID is derived from the attempt's reference (a UUID), so it is stable
for an attempt and new for every attempt: ``low + UUID.int % (high - low + 1)``
over ``[1, 2_000_000_000]`` unless the merchant's ``order_id_range`` narrows it.
Two attempts may land on the same number: with ``n`` earlier orders of the
merchant, a new one collides with probability ``n / 2e9`` (1 in 20,000 after
100,000 orders; over a whole history of ``n`` orders, about ``n² / 4e9`` that
it happens once). A collision is not a double charge: Ameria refuses a second
order with a registered OrderID ("Order already exists"), so that attempt is
refused and the customer's next attempt draws another number. A narrow test
range (1,000 numbers) collides often; that is the test environment's limit.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from shared.domain.money import Money
from shared.gateways import amd
from shared.gateways.ameria.credentials import AmeriaCredentials
from shared.gateways.base import PaymentRequest

INIT_PATH: Final = "api/VPOS/InitPayment"
DETAILS_PATH: Final = "api/VPOS/GetPaymentDetails"
REFUND_PATH: Final = "api/VPOS/RefundPayment"
PAY_PAGE_PATH: Final = "Payments/Pay"
CURRENCY: Final = "051"  # AMD, ISO 4217 numeric
LANGUAGE: Final = "en"
MAX_DESCRIPTION: Final = 250


def order_id_of(attempt_ref: str, low: int = 1, high: int = 2_000_000_000) -> int:
    """The OrderID of an attempt: deterministic, within ``[low, high]``.

    A reference that is not a UUID (never the case for malipo's attempts) is hashed.
    """
    try:
        number = uuid.UUID(attempt_ref).int
    except ValueError:
        number = int.from_bytes(hashlib.sha256(attempt_ref.encode()).digest()[:16], "big")
    return low + number % (high - low + 1)


def whole_drams(amount: Money) -> int:
    """The amount Ameria takes: whole drams."""
    return amd.whole_drams(amount, "Ameriabank vPOS")


def description_of(request: PaymentRequest) -> str:
    """Ameria requires a description: the payment's, else its reference."""
    text = (request.description or "").strip() or f"Payment {request.reference}"
    return text[:MAX_DESCRIPTION]


def init_body(
    credentials: AmeriaCredentials, request: PaymentRequest, back_url: str
) -> dict[str, Any]:
    """InitPayment's body: our attempt as ``OrderID`` (derived) and ``Opaque`` (as is)."""
    return {
        "ClientID": credentials.client_id,
        "Username": credentials.username,
        "Password": credentials.password,
        "OrderID": order_id_of(
            request.attempt_ref, credentials.order_id_low, credentials.order_id_high
        ),
        "Amount": whole_drams(request.amount),
        "Currency": CURRENCY,
        "Description": description_of(request),
        "BackURL": back_url,
        "Opaque": request.attempt_ref,
    }


def details_body(credentials: AmeriaCredentials, payment_id: str) -> dict[str, str]:
    return {
        "PaymentID": payment_id,
        "Username": credentials.username,
        "Password": credentials.password,
    }


def refund_body(credentials: AmeriaCredentials, payment_id: str, amount: Money) -> dict[str, Any]:
    """RefundPayment's body: the order's PaymentID and the whole drams to give back."""
    return {
        "PaymentID": payment_id,
        "Username": credentials.username,
        "Password": credentials.password,
        "Amount": whole_drams(amount),
    }


def pay_page_url(base_url: str, payment_id: str, language: str = LANGUAGE) -> str:
    """Where the customer pays: ``{base}/Payments/Pay?id=<PaymentID>&lang=en``."""
    return f"{base_url.rstrip('/')}/{PAY_PAGE_PATH}?id={quote(payment_id, safe='')}&lang={language}"


def text_field(document: Mapping[str, Any], name: str, limit: int = 200) -> str | None:
    """A field as stripped text (numbers too); None when absent, empty or not scalar."""
    value = document.get(name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        text = str(value).strip()
        return text[:limit] or None
    return None
