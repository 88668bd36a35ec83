"""ArCa iPay's wire (BPC's REST API): register.do, getOrderStatusExtended.do, refund.do.

Form-encoded POSTs under ``{base}`` (``…/payment/rest``), the API login in each
body, JSON answers. ``register.do`` takes ``userName, password, orderNumber,
amount, currency, returnUrl, failUrl, description`` and answers ``{orderId,
formUrl}`` or ``{errorCode, errorMessage}``. ``amount`` is in minor units (luma:
5000 drams is ``500000``), ``currency`` ISO numeric (``051``). After the page the
browser goes to ``returnUrl`` (paid) or ``failUrl`` with ``?orderId=<orderId>``,
unsigned: only getOrderStatusExtended.do is believed. ``refund.do`` takes
``userName, password, orderId, amount`` (luma) and answers ``{errorCode: "0"}``
when done, synchronously.

``orderNumber`` is our attempt's reference without its dashes: 32 hex
characters, the engine's limit, unique per attempt (the engine refuses a second
order with a registered number rather than charging twice).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from shared.domain.money import Money
from shared.gateways import amd
from shared.gateways.arca.credentials import ArcaCredentials
from shared.gateways.base import PaymentRequest, ReturnUrls

REGISTER_PATH: Final = "register.do"
STATUS_PATH: Final = "getOrderStatusExtended.do"
REFUND_PATH: Final = "refund.do"
CURRENCY: Final = "051"  # AMD, ISO 4217 numeric
MAX_ORDER_NUMBER: Final = 32
MAX_DESCRIPTION: Final = 200


def order_number_of(attempt_ref: str) -> str:
    """The attempt's reference as ArCa's ``orderNumber``: a UUID's 32 hex digits.

    A reference that is not a UUID (never the case for malipo's attempts) is kept
    when it fits, else hashed to 32 hex digits.
    """
    try:
        return uuid.UUID(attempt_ref).hex
    except ValueError:
        pass
    compact = attempt_ref.replace("-", "")
    if 0 < len(compact) <= MAX_ORDER_NUMBER and compact.isascii() and compact.isalnum():
        return compact
    return hashlib.sha256(attempt_ref.encode()).hexdigest()[:MAX_ORDER_NUMBER]


def amount_minor(amount: Money) -> int:
    """The amount ArCa takes, in luma; only whole drams are offered (AMD has no coins in use)."""
    return amd.whole_drams(amount, "ArCa iPay") * amd.LUMA_PER_DRAM


def description_of(request: PaymentRequest) -> str:
    text = (request.description or "").strip() or f"Payment {request.reference}"
    return text[:MAX_DESCRIPTION]


def register_body(
    credentials: ArcaCredentials, request: PaymentRequest, return_urls: ReturnUrls
) -> dict[str, str]:
    """register.do's form: our attempt as ``orderNumber``, malipo's return page as both URLs."""
    return {
        "userName": credentials.username,
        "password": credentials.password,
        "orderNumber": order_number_of(request.attempt_ref),
        "amount": str(amount_minor(request.amount)),
        "currency": CURRENCY,
        "returnUrl": return_urls.success,
        "failUrl": return_urls.failure,
        "description": description_of(request),
    }


def status_body(credentials: ArcaCredentials, order_id: str) -> dict[str, str]:
    return {"userName": credentials.username, "password": credentials.password, "orderId": order_id}


def refund_body(credentials: ArcaCredentials, order_id: str, amount: Money) -> dict[str, str]:
    """refund.do's form: the engine's orderId and the amount to give back, in luma."""
    return {
        "userName": credentials.username,
        "password": credentials.password,
        "orderId": order_id,
        "amount": str(amount_minor(amount)),
    }


def is_page_url(value: str) -> bool:
    """An absolute http(s) URL, as ``formUrl`` must be to send a browser there."""
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def text_field(document: Mapping[str, Any], name: str, limit: int = 200) -> str | None:
    """A field as stripped text (numbers too); None when absent, empty or not scalar."""
    value = document.get(name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        text = str(value).strip()
        return text[:limit] or None
    return None
