"""Telcell Money's wire: the invoice link, its security code, and the result's checksum.

From the one production integration that documents Telcell (and integrators' code):

* the customer is sent to ``https://telcellmoney.am/invoices?action=PostInvoice&
  issuer=<shop id>&currency=֏&price=<drams>&product=<base64>&issuer_id=<base64>&
  valid_days=1&lang=<am|en|ru>&security_code=<md5>``;
* ``security_code = MD5(shop_key + issuer + currency + price + product + issuer_id +
  valid_days)``, lower-case hex, where ``product`` and ``issuer_id`` enter the hash
  base64-encoded, exactly as they are sent (integrators' working links agree);
* the RESULT_URL typed into Telcell's cabinet receives a form with ``issuer_id`` (as
  sent, base64), ``status`` (``PAID`` is a payment), ``invoice`` (Telcell's id),
  ``payment_id``, ``currency``, ``sum``, ``time`` and ``checksum = MD5(shop_key +
  invoice + issuer_id + payment_id + currency + sum + time + status)``.

Unverified: the statuses other than ``PAID`` (integrators handle ``REJECTED``), the
formats of ``sum`` and ``time``, and whether a rejection carries a ``payment_id``.
Everything is hashed as UTF-8; the currency is the dram sign ``֏`` (U+058F).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from shared.domain.money import Money
from shared.gateways import amd
from shared.gateways.base import PaymentRequest

INVOICE_PATH = "/invoices"
ACTION = "PostInvoice"
CURRENCY = "֏"
LANGUAGES = ("am", "en", "ru")
# How long Telcell keeps the invoice open; one day, as every sample sends.
VALID_DAYS = "1"
RESULT_CHECKSUM_FIELDS = ("invoice", "issuer_id", "payment_id", "currency", "sum", "time", "status")


def whole_drams(amount: Money) -> int:
    """The price Telcell takes: whole drams."""
    return amd.whole_drams(amount, "Telcell")


def b64(text: str) -> str:
    """Standard base64 of the UTF-8 text, with padding (what Telcell's samples send)."""
    return base64.b64encode(text.encode()).decode("ascii")


def unb64(value: str) -> str:
    """The text a base64 field carries; ValueError when it is not base64 of UTF-8."""
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not base64 of UTF-8 text") from None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def security_code(shop_key: str, params: Mapping[str, str]) -> str:
    """The invoice link's ``security_code`` (base64 fields hashed as sent)."""
    return _md5(
        shop_key
        + params["issuer"]
        + params["currency"]
        + params["price"]
        + params["product"]
        + params["issuer_id"]
        + params["valid_days"]
    )


def result_checksum(shop_key: str, fields: Mapping[str, str]) -> str:
    """The ``checksum`` of a result Telcell posts, lower-case hex."""
    return _md5(shop_key + "".join(fields[name] for name in RESULT_CHECKSUM_FIELDS))


def invoice_params(
    shop_id: str, shop_key: str, language: str, request: PaymentRequest
) -> dict[str, str]:
    """The invoice link's parameters, in Telcell's order, ``security_code`` last.

    ``issuer_id`` is the attempt's reference, base64-encoded; it comes back as sent
    in the result, whose decoded value is the attempt's gateway reference.
    """
    params = {
        "action": ACTION,
        "issuer": shop_id,
        "currency": CURRENCY,
        "price": str(whole_drams(request.amount)),
        "product": b64(request.description or request.reference),
        "issuer_id": b64(request.attempt_ref),
        "valid_days": VALID_DAYS,
        "lang": language,
    }
    params["security_code"] = security_code(shop_key, params)
    return params


def invoice_url(base_url: str, params: Mapping[str, str]) -> str:
    """The link, every value percent-encoded (``֏`` as UTF-8, base64's ``+/=`` escaped)."""
    return f"{base_url.rstrip('/')}{INVOICE_PATH}?{urlencode(params, quote_via=quote, safe='')}"
