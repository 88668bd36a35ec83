"""Daraja's field rules for STK push and STK push query bodies.

Contract: ``validate_push`` and ``validate_query`` check the fields in the order
of the reference table and raise ``InvalidField`` naming the first one that
fails (Daraja answers 400 ``Bad Request - Invalid <Field>``). They only check
that a Password is present: whether it is right is a credential check (500),
made with ``password_matches`` once the shortcode's passkey is known.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

PAYBILL = "CustomerPayBillOnline"
BUY_GOODS = "CustomerBuyGoodsOnline"
TRANSACTION_TYPES = frozenset({PAYBILL, BUY_GOODS})
MIN_AMOUNT = 1
MAX_AMOUNT = 250_000
MAX_ACCOUNT_REFERENCE = 12
MAX_TRANSACTION_DESC = 13

_MSISDN = re.compile(r"254[71][0-9]{8}")
_SHORTCODE = re.compile(r"[0-9]{5,7}")
_TIMESTAMP = re.compile(r"[0-9]{14}")
_WHITESPACE = re.compile(r"\s")
# Daraja refuses a CallBackURL containing any of these words, in any case.
FORBIDDEN_CALLBACK_WORDS = ("m-pesa", "mpesa", "safaricom", "exe", "exec", "cmd", "sql", "query")


class InvalidField(ValueError):
    """A request field broke Daraja's rules; ``field`` is its Daraja name."""

    def __init__(self, field: str) -> None:
        super().__init__(f"Bad Request - Invalid {field}")
        self.field = field


@dataclass(frozen=True)
class PushRequest:
    """A well-formed STK push; numbers are normalized to digit strings."""

    shortcode: str
    password: str
    timestamp: str
    transaction_type: str
    amount: int
    party_a: str
    party_b: str
    phone: str
    callback_url: str
    account_reference: str
    transaction_desc: str


@dataclass(frozen=True)
class QueryRequest:
    """A well-formed STK push query."""

    shortcode: str
    password: str
    timestamp: str
    checkout_request_id: str


def validate_push(body: Mapping[str, object]) -> PushRequest:
    """Check an STK push body field by field; raise ``InvalidField`` on the first bad one."""
    shortcode = shortcode_field(body, "BusinessShortCode")
    password = _password(body)
    timestamp = _timestamp(body)
    transaction_type = _transaction_type(body)
    amount = _amount(body)
    party_a = _msisdn(body, "PartyA")
    party_b = shortcode_field(body, "PartyB")
    # A paybill collects into its own shortcode; a till (Buy Goods) differs from
    # the store number that signs the request.
    if transaction_type == PAYBILL and party_b != shortcode:
        raise InvalidField("PartyB")
    phone = _msisdn(body, "PhoneNumber")
    callback_url = _callback_url(body)
    account_reference = _text(body, "AccountReference", MAX_ACCOUNT_REFERENCE)
    transaction_desc = _text(body, "TransactionDesc", MAX_TRANSACTION_DESC)
    return PushRequest(
        shortcode=shortcode,
        password=password,
        timestamp=timestamp,
        transaction_type=transaction_type,
        amount=amount,
        party_a=party_a,
        party_b=party_b,
        phone=phone,
        callback_url=callback_url,
        account_reference=account_reference,
        transaction_desc=transaction_desc,
    )


def validate_query(body: Mapping[str, object]) -> QueryRequest:
    """Check an STK push query body; raise ``InvalidField`` on the first bad field."""
    shortcode = shortcode_field(body, "BusinessShortCode")
    password = _password(body)
    timestamp = _timestamp(body)
    checkout_request_id = body.get("CheckoutRequestID")
    if not isinstance(checkout_request_id, str) or not checkout_request_id.strip():
        raise InvalidField("CheckoutRequestID")
    return QueryRequest(shortcode, password, timestamp, checkout_request_id)


def expected_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """base64 of the plain concatenation shortcode + passkey + timestamp."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode("ascii")


def password_matches(password: str, shortcode: str, passkey: str, timestamp: str) -> bool:
    """Whether ``password`` is exactly the one Daraja derives for these values."""
    expected = expected_password(shortcode, passkey, timestamp)
    return hmac.compare_digest(password.encode(), expected.encode())


def shortcode_field(body: Mapping[str, object], field: str) -> str:
    """A 5–7 digit shortcode given as a string or a number, as a digit string."""
    text = _digits_text(body.get(field))
    if text is None or not _SHORTCODE.fullmatch(text):
        raise InvalidField(field)
    return text


def _digits_text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def _password(body: Mapping[str, object]) -> str:
    value = body.get("Password")
    if not isinstance(value, str) or not value:
        raise InvalidField("Password")
    return value


def _timestamp(body: Mapping[str, object]) -> str:
    value = body.get("Timestamp")
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise InvalidField("Timestamp")
    try:
        datetime.strptime(value, "%Y%m%d%H%M%S")  # naive on purpose: checks the calendar only
    except ValueError:
        raise InvalidField("Timestamp") from None
    return value


def _transaction_type(body: Mapping[str, object]) -> str:
    value = body.get("TransactionType")
    if not isinstance(value, str) or value not in TRANSACTION_TYPES:
        raise InvalidField("TransactionType")
    return value


def _amount(body: Mapping[str, object]) -> int:
    value = body.get("Amount")
    amount: int | None = None
    if isinstance(value, bool):
        amount = None
    elif isinstance(value, int):
        amount = value
    elif isinstance(value, float):
        amount = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        amount = int(value) if value.isascii() and value.isdigit() else None
    if amount is None or not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise InvalidField("Amount")
    return amount


def _msisdn(body: Mapping[str, object], field: str) -> str:
    text = _digits_text(body.get(field))
    if text is None or not _MSISDN.fullmatch(text):
        raise InvalidField(field)
    return text


def _callback_url(body: Mapping[str, object]) -> str:
    value = body.get("CallBackURL")
    if not isinstance(value, str) or not value or _WHITESPACE.search(value):
        raise InvalidField("CallBackURL")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise InvalidField("CallBackURL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidField("CallBackURL")
    if any(word in value.lower() for word in FORBIDDEN_CALLBACK_WORDS):
        raise InvalidField("CallBackURL")
    return value


def _text(body: Mapping[str, object], field: str, max_length: int) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidField(field)
    return value
