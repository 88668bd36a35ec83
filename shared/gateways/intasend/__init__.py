"""IntaSend (Kenya): M-Pesa STK push collections in KES, with a status API and webhooks;
refunds as chargebacks and payouts as send-money (M-Pesa B2C).

Webhooks carry the merchant's dashboard ``challenge`` (no signature, no
timestamp), so successes are confirmed with ``payment/status/`` before credit
by default. The merchant sets the dashboard webhook URL to malipo's callback
URL for IntaSend, and the same challenge here: IntaSend takes no callback URL
per request. Chargeback webhooks go to that URL too; send-money results go to
each payout's ``callback_url`` (malipo's result URL, ``…/xr-<ref>``), both with the
challenge. The transaction list reconciliation reads (``GET transactions/``) is
unverified: see ``shared.gateways.intasend.transactions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.gateways.base import Capability
from shared.gateways.description import CredentialField, GatewayDescription, sha256_verifier
from shared.gateways.intasend.client import IntaSendAdapter
from shared.gateways.intasend.webhooks import CHALLENGE_VERIFIER

# The local simulator's built-in account (sandbox/intasend/accounts.py keeps the same values).
SIMULATOR_PUBLISHABLE_KEY: Final = "ISPubKey_test_7c0a5b8e-3f1d-4a62-9b1e-2d4c6f8a0b13"
SIMULATOR_SECRET_KEY: Final = "ISSecretKey_test_4e9d2a17-6b3c-4f08-8a5d-1c7e9b2f6a40"  # noqa: S105
SIMULATOR_CHALLENGE: Final = "malipo-sandbox-challenge"


def callback_verifiers(stored: Mapping[str, Any]) -> dict[str, str]:
    """The challenge's hash, kept in clear beside the encrypted credentials."""
    challenge = stored.get("challenge")
    return {CHALLENGE_VERIFIER: sha256_verifier(str(challenge))} if challenge else {}


DESCRIPTION = GatewayDescription(
    name="intasend",
    title="IntaSend (M-Pesa STK push)",
    callback_segment="intasend",
    currencies=("KES",),
    phone_regions=("KE",),
    base_urls={
        "sandbox": "https://sandbox.intasend.com/api/v1",
        "production": "https://payment.intasend.com/api/v1",
    },
    credentials=(
        CredentialField("publishable_key", "IntaSend publishable key (ISPubKey_…)"),
        CredentialField("secret_key", "IntaSend secret API token (ISSecretKey_…)", secret=True),
        CredentialField(
            "challenge", "the webhook challenge set in the IntaSend dashboard", secret=True
        ),
        CredentialField(
            "wallet_id",
            "IntaSend wallet to credit (default: the settlement wallet)",
            required=False,
        ),
        CredentialField(
            "payout_approval",
            "'yes' when the IntaSend account requires send-money batches to be approved "
            "(malipo approves each payout at once)",
            required=False,
            choices=("yes", "no"),
            default="no",
        ),
    ),
    capabilities=frozenset(
        {
            Capability.PUSH,
            Capability.STATUS,
            Capability.CALLBACKS,
            Capability.CUSTOMER_REFERENCE,
            Capability.REFUND,
            Capability.PAYOUT,
            Capability.TRANSACTIONS,
        }
    ),
    adapter_factory=IntaSendAdapter,
    kept_headers=("content-type", "user-agent", "x-forwarded-for", "content-length"),
    # IntaSend's own sandbox keys say "_test_", which production refuses already.
    sandbox_values=frozenset(),
    confirm_before_credit=True,
    callback_verifiers=callback_verifiers,
    simulator_credentials={
        "publishable_key": SIMULATOR_PUBLISHABLE_KEY,
        "secret_key": SIMULATOR_SECRET_KEY,
        "challenge": SIMULATOR_CHALLENGE,
    },
    simulator_path="/intasend/api/v1",
    callback_authentication="path secret + webhook challenge (constant time)",
    source_of_truth="payment/status/",
)
