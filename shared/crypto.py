"""Keys, hashes and ciphers: API keys, callback secrets, payment ids, credentials at rest."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Payment ids are uuid5(this namespace, "<merchant id>/<idempotency key>").
PAYMENT_ID_NAMESPACE = uuid.UUID("6d0f3c0e-6a39-4f55-9b1c-2c6c9f1f0a51")
API_KEY_PREFIX = "mlp"
NONCE_BYTES, TAG_BYTES = 12, 16  # AES-GCM
PREFIX_LENGTH = len(API_KEY_PREFIX) + 1 + 12  # "mlp_" + 12 hex digits


def payment_id_for(merchant_id: uuid.UUID, idempotency_key: str) -> uuid.UUID:
    """The payment id a (merchant, idempotency key) pair always maps to."""
    return uuid.uuid5(PAYMENT_ID_NAMESPACE, f"{merchant_id}/{idempotency_key}")


def canonical_json(value: Any) -> bytes:
    """A stable encoding for hashing: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_hash(request: dict[str, Any]) -> str:
    """Fingerprint of a normalised payment request, to spot a reused idempotency key."""
    return hashlib.sha256(canonical_json(request)).hexdigest()


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@dataclass(frozen=True)
class NewApiKey:
    prefix: str
    secret: str

    @property
    def token(self) -> str:
        """What the merchant sends as ``Authorization: Bearer <token>`` (shown once)."""
        return f"{self.prefix}_{self.secret}"


def new_api_key() -> NewApiKey:
    return NewApiKey(
        prefix=f"{API_KEY_PREFIX}_{secrets.token_hex(6)}", secret=secrets.token_urlsafe(32)
    )


def split_api_key(token: str) -> tuple[str, str] | None:
    """``mlp_<12 hex>_<secret>`` → (prefix, secret), or None if it cannot be one of ours.

    The secret part is URL-safe base64 and may itself contain underscores.
    """
    prefix, secret = token[:PREFIX_LENGTH], token[PREFIX_LENGTH + 1 :]
    if token[PREFIX_LENGTH : PREFIX_LENGTH + 1] != "_" or not secret:
        return None
    if not prefix.startswith(API_KEY_PREFIX + "_") or not all(
        c in "0123456789abcdef" for c in prefix[4:]
    ):
        return None
    return prefix, secret


def hash_api_secret(pepper: bytes, secret: str) -> str:
    """Keyed hash of an API key's secret part; only this is stored."""
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def new_callback_secret() -> str:
    """An unguessable path segment (256 bits).

    Hex, because base64 letters can spell words (``exe``, ``cmd``, ``SQL``) that make
    Safaricom refuse the CallBackURL; hex digits spell none of them.
    """
    return secrets.token_hex(32)


class CredentialCipher:
    """AES-256-GCM for gateway credentials; the key id is stored beside the ciphertext.

    Encrypts with the first (active) key; decrypts with whichever key id a row names,
    so keys can be rotated while old rows are still readable.
    """

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._keys = dict(keys)
        self.active_key_id = keys[0][0]

    def encrypt(self, payload: dict[str, Any], *, context: str) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext); ``context`` binds the row (e.g. merchant/gateway)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._keys[self.active_key_id]).encrypt(
            nonce, canonical_json(payload), context.encode()
        )
        return self.active_key_id, nonce + sealed

    def decrypt(self, key_id: str, blob: bytes, *, context: str) -> dict[str, Any]:
        key = self._keys.get(key_id)
        if key is None:
            raise CredentialKeyMissing(key_id)
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise CredentialTampered(key_id)
        try:
            plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise CredentialTampered(key_id) from None
        value: dict[str, Any] = json.loads(plain)
        return value


class CredentialKeyMissing(Exception):
    """A row was encrypted with a key id this process was not given."""


class CredentialTampered(Exception):
    """A ciphertext does not authenticate under its key: edited or moved between rows."""
