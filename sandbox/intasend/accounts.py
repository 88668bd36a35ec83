"""Merchant accounts the simulator knows: API keys, wallets and the dashboard webhook."""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass, field, replace
from typing import Final

# The built-in test account; the product's simulator credentials name the same values.
BUILTIN_PUBLISHABLE_KEY: Final = "ISPubKey_test_7c0a5b8e-3f1d-4a62-9b1e-2d4c6f8a0b13"
BUILTIN_SECRET_KEY: Final = "ISSecretKey_test_4e9d2a17-6b3c-4f08-8a5d-1c7e9b2f6a40"
BUILTIN_CHALLENGE: Final = "malipo-sandbox-challenge"
BUILTIN_WALLET_ID: Final = "QZ7WOPR"


def new_publishable_key() -> str:
    return f"ISPubKey_test_{uuid.uuid4()}"


def new_secret_key() -> str:
    return f"ISSecretKey_test_{uuid.uuid4()}"


def new_wallet_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(7))


@dataclass(frozen=True)
class Webhook:
    url: str
    challenge: str


@dataclass(frozen=True)
class Account:
    publishable_key: str
    secret_key: str
    wallet_ids: frozenset[str] = field(default_factory=frozenset)
    webhook: Webhook | None = None

    def with_webhook(self, webhook: Webhook | None) -> Account:
        return replace(self, webhook=webhook)

    def to_json(self) -> dict[str, object]:
        return {
            "publishable_key": self.publishable_key,
            "secret_key": self.secret_key,
            "wallet_ids": sorted(self.wallet_ids),
            "webhook": (
                {"url": self.webhook.url, "challenge": self.webhook.challenge}
                if self.webhook
                else None
            ),
        }


def builtin_account(webhook: Webhook | None) -> Account:
    return Account(
        BUILTIN_PUBLISHABLE_KEY, BUILTIN_SECRET_KEY, frozenset({BUILTIN_WALLET_ID}), webhook
    )
