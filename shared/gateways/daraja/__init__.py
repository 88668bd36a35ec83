"""Safaricom M-Pesa Daraja: STK push (M-Pesa Express) collections in KES, Reversal refunds
and B2C payouts."""

from __future__ import annotations

from shared.gateways.base import Capability
from shared.gateways.daraja.client import DarajaAdapter
from shared.gateways.daraja.initiator import CERTIFICATE_SETTING
from shared.gateways.daraja.security import SAFARICOM_CALLBACK_IPS
from shared.gateways.description import CredentialField, GatewayDescription

# Public values of Safaricom's sandbox (shortcodes, the STK passkey): production refuses them.
SANDBOX_SHORTCODES = frozenset({"174379", "600000", "600977"})
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
# The local simulator's API initiator (sandbox/daraja/transfers.py), for `make run`.
SIMULATOR_INITIATOR_NAME = "testapi"
SIMULATOR_INITIATOR_PASSWORD = "malipo-sandbox-initiator-1"  # noqa: S105 - the simulator's

DESCRIPTION = GatewayDescription(
    name="daraja",
    title="Safaricom M-Pesa (Daraja)",
    # Safaricom refuses CallBackURLs that say "mpesa": the path names the API instead.
    callback_segment="daraja",
    currencies=("KES",),
    phone_regions=("KE",),
    base_urls={
        "sandbox": "https://sandbox.safaricom.co.ke",
        "production": "https://api.safaricom.co.ke",
    },
    credentials=(
        CredentialField("consumer_key", "Daraja app consumer key", secret=True),
        CredentialField("consumer_secret", "Daraja app consumer secret", secret=True),
        CredentialField("shortcode", "paybill number, or the store number of a till"),
        CredentialField("passkey", "Lipa na M-Pesa Online passkey", secret=True),
        CredentialField(
            "mode",
            "paybill or till",
            required=False,
            choices=("paybill", "till"),
            default="paybill",
        ),
        CredentialField("till", "till number (till mode)", required=False),
        CredentialField(
            "initiator_name", "API initiator username (refunds and payouts)", required=False
        ),
        CredentialField(
            "initiator_password",
            "API initiator password (refunds and payouts)",
            secret=True,
            required=False,
        ),
        CredentialField(
            "b2c_shortcode",
            "B2C shortcode payouts are paid from (default: shortcode)",
            required=False,
        ),
    ),
    capabilities=frozenset(
        {
            Capability.PUSH,
            Capability.STATUS,
            Capability.CALLBACKS,
            Capability.REFUND,
            Capability.PAYOUT,
            Capability.TRANSACTIONS,
        }
    ),
    adapter_factory=DarajaAdapter,
    kept_headers=(
        "content-type",
        "user-agent",
        "businessshortcode",
        "x-forwarded-for",
        "content-length",
    ),
    sandbox_values=SANDBOX_SHORTCODES | {SANDBOX_PASSKEY, SIMULATOR_INITIATOR_PASSWORD},
    named_allowlists={"safaricom": SAFARICOM_CALLBACK_IPS},
    aliases=("mpesa",),
    simulator_credentials={
        "consumer_key": "malipo-sandbox-key",
        "consumer_secret": "malipo-sandbox-secret",
        "shortcode": "174379",
        "passkey": SANDBOX_PASSKEY,
        "initiator_name": SIMULATOR_INITIATOR_NAME,
        "initiator_password": SIMULATOR_INITIATOR_PASSWORD,
    },
    settings_fields={
        CERTIFICATE_SETTING: "path to Safaricom's X.509 certificate (PEM) for SecurityCredential"
    },
    simulator_path="",
    callback_authentication="path secret; optional Safaricom IP allowlist and signature",
    source_of_truth="STK push query",
)
