"""Merchants, their API keys and their gateway credentials.

API keys are shown once and stored as a keyed hash. Gateway credentials, and
the callback path secret that goes with them, are stored AES-GCM encrypted;
only a SHA-256 of the callback secret is kept in clear, to find the merchant
when a callback arrives.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.crypto import (
    CredentialCipher,
    hash_api_secret,
    new_api_key,
    new_callback_secret,
    sha256_hex,
    split_api_key,
)
from shared.db.models import ApiKey, GatewayCredential, Merchant
from shared.settings import looks_like_sandbox

DEFAULT_SCOPES = ("payments:write", "payments:read")


@dataclass(frozen=True)
class Principal:
    """Who an authenticated request speaks for: a merchant, or (no merchant) a platform operator."""

    merchant_id: uuid.UUID | None
    api_key_id: uuid.UUID
    scopes: frozenset[str]

    @property
    def is_operator(self) -> bool:
        return self.merchant_id is None


class CredentialsRefused(ValueError):
    """Credentials that must not be stored in this environment."""


def create_merchant(session: Session, name: str) -> Merchant:
    merchant = Merchant(id=uuid.uuid4(), name=name)
    session.add(merchant)
    session.flush()
    return merchant


def issue_api_key(
    session: Session,
    pepper: bytes,
    merchant_id: uuid.UUID,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
) -> str:
    """A new key for the merchant; the returned token is never retrievable again."""
    key = new_api_key()
    session.add(
        ApiKey(
            id=uuid.uuid4(),
            merchant_id=merchant_id,
            prefix=key.prefix,
            secret_hash=hash_api_secret(pepper, key.secret),
            scopes=list(scopes),
        )
    )
    session.flush()
    return key.token


def authenticate_api_key(session: Session, pepper: bytes, token: str) -> Principal | None:
    """The principal a bearer token speaks for, or None (unknown, revoked or wrong)."""
    parts = split_api_key(token)
    if parts is None:
        return None
    prefix, secret = parts
    row = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()
    # Hash even when the prefix is unknown, so the answer takes the same time either way.
    presented = hash_api_secret(pepper, secret)
    expected = row.secret_hash if row is not None else "0" * 64
    if not hmac.compare_digest(presented, expected) or row is None or row.revoked_at is not None:
        return None
    return Principal(row.merchant_id, row.id, frozenset(row.scopes))


def _context(merchant_id: uuid.UUID, gateway: str) -> str:
    return f"gateway_credentials/{merchant_id}/{gateway}"


def store_gateway_credentials(
    session: Session,
    cipher: CredentialCipher,
    merchant_id: uuid.UUID,
    gateway: str,
    credentials: dict[str, Any],
    *,
    production: bool,
) -> str:
    """Encrypt and store a merchant's credentials; returns the new callback path secret."""
    if production:
        suspicious = [k for k, v in credentials.items() if looks_like_sandbox(str(v))]
        if suspicious:
            raise CredentialsRefused(
                "production refuses sandbox-looking credentials: " + ", ".join(sorted(suspicious))
            )
    secret = new_callback_secret()
    key_id, blob = cipher.encrypt(
        {**credentials, "callback_secret": secret}, context=_context(merchant_id, gateway)
    )
    existing = session.scalars(
        select(GatewayCredential).where(
            GatewayCredential.merchant_id == merchant_id, GatewayCredential.gateway == gateway
        )
    ).one_or_none()
    row = existing or GatewayCredential(id=uuid.uuid4(), merchant_id=merchant_id, gateway=gateway)
    row.key_id, row.ciphertext, row.callback_secret_hash = key_id, blob, sha256_hex(secret)
    session.add(row)
    session.flush()
    return secret


def load_gateway_credentials(
    session: Session, cipher: CredentialCipher, merchant_id: uuid.UUID, gateway: str
) -> dict[str, Any] | None:
    """The decrypted credentials of an enabled gateway, or None."""
    row = session.scalars(
        select(GatewayCredential).where(
            GatewayCredential.merchant_id == merchant_id,
            GatewayCredential.gateway == gateway,
            GatewayCredential.enabled.is_(True),
        )
    ).one_or_none()
    if row is None:
        return None
    return cipher.decrypt(row.key_id, row.ciphertext, context=_context(merchant_id, gateway))


def gateway_enabled(session: Session, merchant_id: uuid.UUID, gateway: str) -> bool:
    return (
        session.scalar(
            select(GatewayCredential.id).where(
                GatewayCredential.merchant_id == merchant_id,
                GatewayCredential.gateway == gateway,
                GatewayCredential.enabled.is_(True),
            )
        )
        is not None
    )


def credential_for_callback_secret(
    session: Session, gateway: str, secret: str
) -> GatewayCredential | None:
    """The credentials row whose callback secret hashes to what the path carries."""
    return session.scalars(
        select(GatewayCredential).where(
            GatewayCredential.gateway == gateway,
            GatewayCredential.callback_secret_hash == sha256_hex(secret),
        )
    ).one_or_none()
