"""Pure STK push rules: credentials, Password, Timestamp, the request body."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from shared.domain.money import mpesa_whole_shillings
from shared.gateways.base import PaymentRequest

# Kenya keeps East Africa Time (UTC+3) all year, with no daylight saving.
NAIROBI = timezone(timedelta(hours=3), "EAT")
TRANSACTION_TYPES = {"paybill": "CustomerPayBillOnline", "till": "CustomerBuyGoodsOnline"}
ACCOUNT_REFERENCE_MAX = 12
TRANSACTION_DESC_MAX = 13
_SHORTCODE = re.compile(r"[0-9]{5,7}")  # ASCII digits only: \d matches any script's digits


@dataclass(frozen=True)
class DarajaCredentials:
    """A merchant's Daraja app and shortcode.

    ``mode`` is ``paybill`` (PartyB = the shortcode) or ``till`` (Buy Goods: the
    shortcode is the store number and ``party_b`` the till number). Money out
    (Reversal, B2C, Transaction Status) also needs the API initiator; B2C pays from
    ``b2c_shortcode`` (the shortcode itself unless set).
    """

    consumer_key: str
    consumer_secret: str
    shortcode: str
    passkey: str
    mode: Literal["paybill", "till"]
    party_b: str
    initiator_name: str | None = None
    initiator_password: str | None = field(default=None, repr=False)
    b2c_shortcode: str | None = None

    def __post_init__(self) -> None:
        for name in ("shortcode", "party_b"):
            if not _SHORTCODE.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} must be 5-7 digits")
        if self.b2c_shortcode is not None and not _SHORTCODE.fullmatch(self.b2c_shortcode):
            raise ValueError("b2c_shortcode must be 5-7 digits")
        if self.mode not in TRANSACTION_TYPES:
            raise ValueError("mode must be 'paybill' or 'till'")
        if self.mode == "paybill" and self.party_b != self.shortcode:
            raise ValueError("for paybill, party_b is the shortcode itself")
        for name in ("consumer_key", "consumer_secret", "passkey"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> DarajaCredentials:
        """Stored credentials; ``till`` (``party_b`` in rows written before) is the till number."""
        mode = stored.get("mode") or "paybill"
        shortcode = str(stored["shortcode"])
        return cls(
            consumer_key=str(stored["consumer_key"]),
            consumer_secret=str(stored["consumer_secret"]),
            shortcode=shortcode,
            passkey=str(stored["passkey"]),
            mode=mode,  # type: ignore[arg-type]  # __post_init__ checks it
            party_b=str(stored.get("till") or stored.get("party_b") or shortcode),
            initiator_name=_optional(stored.get("initiator_name")),
            initiator_password=_optional(stored.get("initiator_password")),
            b2c_shortcode=_optional(stored.get("b2c_shortcode")),
        )

    @property
    def payout_shortcode(self) -> str:
        return self.b2c_shortcode or self.shortcode


def _optional(value: Any) -> str | None:
    """A stored optional value: None (or blank) when the merchant left it out."""
    text = str(value).strip() if value is not None else ""
    return text or None


def nairobi_timestamp(now: datetime | None = None) -> str:
    """``YYYYMMDDHHmmss`` in Nairobi time, as Daraja expects."""
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware time is required")
    return moment.astimezone(NAIROBI).strftime("%Y%m%d%H%M%S")


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """base64(BusinessShortCode + Passkey + Timestamp), plain ASCII concatenation."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode("ascii")).decode("ascii")


def account_reference(reference: str) -> str:
    """What the customer sees in the prompt and SMS: the first 12 characters."""
    return reference[:ACCOUNT_REFERENCE_MAX]


def transaction_desc(description: str | None, reference: str) -> str:
    return (description or reference or "Payment")[:TRANSACTION_DESC_MAX]


def stk_push_body(
    credentials: DarajaCredentials, request: PaymentRequest, timestamp: str
) -> dict[str, Any]:
    """The STK push request Daraja takes (``processrequest``)."""
    return {
        "BusinessShortCode": credentials.shortcode,
        "Password": stk_password(credentials.shortcode, credentials.passkey, timestamp),
        "Timestamp": timestamp,
        "TransactionType": TRANSACTION_TYPES[credentials.mode],
        "Amount": mpesa_whole_shillings(request.amount),
        "PartyA": request.phone,
        "PartyB": credentials.party_b,
        "PhoneNumber": request.phone,
        "CallBackURL": request.callback_url,
        "AccountReference": account_reference(request.reference),
        "TransactionDesc": transaction_desc(request.description, request.reference),
    }


def stk_query_body(
    credentials: DarajaCredentials, checkout_request_id: str, timestamp: str
) -> dict[str, Any]:
    return {
        "BusinessShortCode": credentials.shortcode,
        "Password": stk_password(credentials.shortcode, credentials.passkey, timestamp),
        "Timestamp": timestamp,
        "CheckoutRequestID": checkout_request_id,
    }
