"""Identifiers shaped like Daraja's: request ids, checkout ids, receipts, tokens.

Generators here are random, not unique; the state retries on collision.
"""

from __future__ import annotations

import random
import secrets
import string
from datetime import datetime, timedelta, timezone

NAIROBI = timezone(timedelta(hours=3), "EAT")
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_TOKEN_ALPHABET = string.ascii_letters + string.digits


def nairobi_now() -> datetime:
    """The current time in Nairobi (EAT, UTC+3, no daylight saving)."""
    return datetime.now(NAIROBI)


def request_id() -> str:
    """A ``requestId`` / ``MerchantRequestID`` like ``29115-34620561-1``."""
    return f"{random.randint(10000, 99999)}-{random.randint(10_000_000, 99_999_999)}-1"


def checkout_request_id(at: datetime) -> str:
    """A ``CheckoutRequestID`` like ``ws_CO_<DDMMYYYYHHMMSS><10 digits>``."""
    suffix = "".join(random.choices(string.digits, k=10))
    return f"ws_CO_{at.strftime('%d%m%Y%H%M%S')}{suffix}"


def receipt_number() -> str:
    """An ``MpesaReceiptNumber``: 10 uppercase letters and digits, a letter first."""
    return random.choice(string.ascii_uppercase) + "".join(random.choices(_UPPER_ALNUM, k=9))


def access_token() -> str:
    """An opaque bearer token, 28 letters and digits like Daraja's."""
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(28))


def transaction_date(at: datetime) -> int:
    """``YYYYMMDDHHmmss`` of ``at`` in Nairobi time, as the callback's integer."""
    return int(at.astimezone(NAIROBI).strftime("%Y%m%d%H%M%S"))


def conversation_id(at: datetime | None = None) -> str:
    """A ``ConversationID`` like ``AG_20191219_00005797af5d7d75f652``."""
    moment = at or nairobi_now()
    return f"AG_{moment.strftime('%Y%m%d')}_{secrets.token_hex(10)}"
