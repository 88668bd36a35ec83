"""FastShift's wire format: paths, the register body, and reading its answers.

Pay by FastShift v1.0 (the document FastShift hands merchants):

* ``POST {base}/order/register`` (``base`` = ``https://merchants.fastshift.am/api/en/vpos``)
  ``{order_number: guid, amount: unsigned int, description, callback_url, webhook_url?,
  external_order_id?}`` → ``{"status": "OK", "data": {"order": {order_number, order_guid,
  amount, description, status, created_at, completed_at, expires_at, …}, "redirect_url"}}``;
* ``GET {base}/order/status/{order_number}`` → the same ``data.order`` (plus
  ``data.fastshift_id``, the payer's FastShift id).

``callback_url`` is where FastShift sends the *browser* afterwards (with ``status``
and ``order_number`` in its query); ``webhook_url`` is its server-to-server call.
Amounts are whole drams. Unverified: the length limit of ``description``
(``MAX_DESCRIPTION``), and whether some integrations see ``redirect_url`` at the
top level rather than in ``data`` (both are read).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlsplit

from shared.domain.money import Money
from shared.gateways import amd
from shared.gateways.base import PaymentRequest

REGISTER_PATH: Final = "order/register"
STATUS_PATH: Final = "order/status/{order_number}"
CURRENCY: Final = "AMD"
DRAM: Final = 100  # minor units per dram (AMD has exponent 2 in our money table)
# ``amount`` is an unsigned int of drams.
MAX_DRAMS: Final = 2**32 - 1
MAX_DESCRIPTION: Final = 255  # unverified: FastShift publishes no limit
MAX_ID_LENGTH: Final = 100


def whole_drams(amount: Money) -> int:
    """The amount FastShift takes: whole drams, within an unsigned int."""
    return amd.whole_drams(amount, "FastShift", MAX_DRAMS)


def drams_to_money(value: Any) -> Money | None:
    """An amount FastShift reports (whole drams, a number or digit string); None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 0 or value > MAX_DRAMS:
        return None
    return Money(value * DRAM, CURRENCY)


def status_path(order_number: str) -> str:
    """The status path, the order number escaped (it is ours, but never trust a path part)."""
    return STATUS_PATH.format(order_number=quote(order_number, safe=""))


def description_of(request: PaymentRequest) -> str:
    """The text FastShift's page shows (required): the payment's description or its reference."""
    text = (request.description or "").strip() or f"Payment {request.reference}"
    return text[:MAX_DESCRIPTION]


def register_body(request: PaymentRequest, browser_return_url: str) -> dict[str, Any]:
    """The register request. ``order_number`` is the attempt's reference (a UUID string).

    ``callback_url`` is malipo's return page (the browser's way back, for both
    outcomes: FastShift has one); ``webhook_url`` is malipo's callback URL for
    this attempt; ``external_order_id`` the merchant's own reference.
    """
    return {
        "order_number": request.attempt_ref,
        "amount": whole_drams(request.amount),
        "description": description_of(request),
        "callback_url": browser_return_url,
        "webhook_url": request.callback_url,
        "external_order_id": request.reference,
    }


def data_of(document: Mapping[str, Any]) -> dict[str, Any]:
    data = document.get("data")
    return data if isinstance(data, dict) else {}


def order_of(document: Mapping[str, Any]) -> dict[str, Any]:
    order = data_of(document).get("order")
    return order if isinstance(order, dict) else {}


def redirect_url_of(document: Mapping[str, Any]) -> str | None:
    """``data.redirect_url`` (or a top-level ``redirect_url``) when it is an http(s) URL."""
    for value in (data_of(document).get("redirect_url"), document.get("redirect_url")):
        if isinstance(value, str) and _is_http_url(value.strip()):
            return value.strip()
    return None


def text_field(document: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` present as non-empty text or an integer, stripped and capped."""
    for name in names:
        value = document.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (str, int)):
            text = str(value).strip()
            if text:
                return text[:MAX_ID_LENGTH]
    return None


def error_message(document: Mapping[str, Any], fallback: str) -> str:
    """What an error answer says: its ``message``, else its per-field ``errors``."""
    message = document.get("message")
    if isinstance(message, str) and message.strip():
        return message.strip()[:300]
    problems = field_errors(document)
    if problems:
        return "; ".join(f"{name}: {text}" for name, text in problems.items())[:300]
    return fallback[:300]


def field_errors(document: Mapping[str, Any]) -> dict[str, str]:
    """``INVALID_DATA``'s ``errors`` object, as field → message."""
    problems = document.get("errors")
    if not isinstance(problems, dict):
        return {}
    found = {}
    for name, value in problems.items():
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        found[str(name)[:40]] = str(value)[:200]
    return found


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
