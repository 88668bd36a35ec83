"""Pay page links: an unguessable, expiring token per payment, checked without storage.

A token is ``<expiry>.<mac>``: the expiry as Unix seconds and an HMAC-SHA256 over
the payment id and that expiry, under a key derived from ``MALIPO_SECRET_KEY``.
Nothing is stored, so every token malipo issued for a payment works until its own
expiry, and the same payment cycle always gets the same token (see
:func:`pay_token`): a retried request sees the same link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.settings import Settings

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
    """The token of a payment cycle's link: it works for at least ``ttl_s`` after acceptance.

    The expiry is counted from the start of the hour the cycle was accepted in (plus
    that hour), so a request retried before the first one was stored, which cannot
    know the first's exact acceptance time, is answered the same link.
    """
    hour = accepted_at.replace(minute=0, second=0, microsecond=0)
    return issue_token(secret_key, payment_id, hour + timedelta(seconds=ttl_s + 3600))


@dataclass(frozen=True)
class PayLinks:
    """Issues and checks a deployment's pay page links."""

    secret_key: str
    public_base_url: str
    ttl_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PayLinks:
        secret_key = settings.secret_key.get_secret_value()
        return cls(secret_key, settings.public_base_url, settings.pay_link_ttl_s)

    def token(self, payment_id: uuid.UUID, accepted_at: datetime) -> str:
        return pay_token(self.secret_key, payment_id, accepted_at, self.ttl_s)

    def pay_url(self, payment_id: uuid.UUID, accepted_at: datetime) -> str:
        """The page to send the customer to (shown with a hosted payment through the pay page)."""
        return f"{self.public_base_url}/pay/{payment_id}?t={self.token(payment_id, accepted_at)}"

    def return_url(self, payment_id: uuid.UUID, accepted_at: datetime) -> str:
        """Where a gateway's page sends the customer back: the pay page's return page."""
        token = self.token(payment_id, accepted_at)
        return f"{self.public_base_url}/pay/{payment_id}/return?t={token}"

    def valid(self, payment_id: uuid.UUID, token: str | None, now: datetime) -> bool:
        return token is not None and token_valid(self.secret_key, payment_id, token, now)
