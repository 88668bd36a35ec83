"""Pay page links: an unguessable, expiring token per payment, checked without storage.

A token is ``<expiry>.<mac>``: the expiry as Unix seconds and an HMAC-SHA256 over
the payment id and that expiry, under a key derived from ``MALIPO_SECRET_KEY``.
Nothing is stored, so every token malipo issued for a payment works until its own
expiry, and the same payment cycle always gets the same token (its expiry is
counted from the cycle's acceptance): a retried request sees the same link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

_CONTEXT = b"malipo pay page link v1"


def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), _CONTEXT, hashlib.sha256).digest()


def _mac(key: bytes, payment_id: uuid.UUID, expires: int) -> str:
    digest = hmac.new(key, f"{payment_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def issue_token(secret_key: str, payment_id: uuid.UUID, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    return f"{expires}.{_mac(_key(secret_key), payment_id, expires)}"


def token_valid(secret_key: str, payment_id: uuid.UUID, token: str, now: datetime) -> bool:
    """Whether ``token`` was issued for ``payment_id`` and has not expired."""
    expires_text, _, mac = token.partition(".")
    if not expires_text.isascii() or not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    expected = _mac(_key(secret_key), payment_id, expires)
    return hmac.compare_digest(expected.encode(), mac.encode()) and now.timestamp() < expires


def pay_token(secret_key: str, payment_id: uuid.UUID, accepted_at: datetime, ttl_s: int) -> str:
    """The token of a payment cycle's link: it expires ``ttl_s`` after the cycle's acceptance."""
    return issue_token(secret_key, payment_id, accepted_at + timedelta(seconds=ttl_s))
