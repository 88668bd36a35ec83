"""Idram: Armenian wallet payments on Idram's own page, confirmed by a signed form.

The browser posts a form to Idram; Idram asks the merchant's RESULT_URL whether the
bill may be paid (the precheck), takes the money, and posts a confirmation signed
with the merchant's secret key. The RESULT_URL and the success and fail pages are
typed into Idram's merchant cabinet once, not sent per order: they are malipo's
``/callbacks/idram/<secret>`` and ``/pay/return``. No status API, no refunds.
"""

from __future__ import annotations

from shared.gateways.base import Capability
from shared.gateways.description import CredentialField, GatewayDescription
from shared.gateways.idram.callbacks import account_verifiers
from shared.gateways.idram.client import IdramAdapter
from shared.gateways.idram.wire import LANGUAGES

BASE_URL = "https://banking.idram.am"

DESCRIPTION = GatewayDescription(
    name="idram",
    title="Idram",
    callback_segment="idram",
    currencies=("AMD",),
    phone_regions=("AM",),
    # Idram has no public sandbox: test accounts live on the production host.
    base_urls={"sandbox": BASE_URL, "production": BASE_URL},
    credentials=(
        CredentialField("rec_account", "the merchant's Idram ID (EDP_REC_ACCOUNT)"),
        CredentialField("secret_key", "the SECRET_KEY Idram signs confirmations with", secret=True),
        CredentialField(
            "language",
            "the language of Idram's page",
            required=False,
            choices=LANGUAGES,
            default="EN",
        ),
    ),
    manual_refunds=True,  # no refund API
    capabilities=frozenset({Capability.HOSTED, Capability.CALLBACKS}),
    default_flow=Capability.HOSTED,
    adapter_factory=IdramAdapter,
    confirm_before_credit=False,
    callback_verifiers=account_verifiers,
    simulator_credentials={
        "rec_account": "110000601",
        "secret_key": "sandbox-idram-secret-key-4d2f9a",
        "language": "EN",
    },
    simulator_path="/idram",
    pay_page=True,
    result_url_in_cabinet=True,
    callback_authentication="path secret + Idram ID; MD5 EDP_CHECKSUM with the secret key",
    source_of_truth="the signed confirmation (no status API)",
)
