"""InTouch Group (TouchPay / GU): mobile-money collections in West and Central Africa.

Not IntouchPay Rwanda, a different company. Two collection flows: TouchPay's
browser SDK (hosted, the default) and GU's direct collection (push). InTouch signs
no callback: the merchant's HTTP Basic credentials and the path secret prove a
callback's origin, and check_status confirms every success before credit.
"""

from __future__ import annotations

from shared.gateways.base import Capability
from shared.gateways.description import CredentialField, GatewayDescription
from shared.gateways.intouch.callbacks import basic_verifiers
from shared.gateways.intouch.client import InTouchAdapter

# UEMOA (XOF) then CEMAC (XAF) countries where InTouch operates; Senegal, its home, first.
PHONE_REGIONS = ("SN", "CI", "ML", "BF", "BJ", "TG", "NE", "GW", "CM", "GA", "CG", "TD")
GU_BASE_URL = "https://apidist.gutouch.net/apidist/sec"

DESCRIPTION = GatewayDescription(
    name="intouch",
    title="InTouch (TouchPay / GU)",
    callback_segment="intouch",
    currencies=("XOF", "XAF"),
    phone_regions=PHONE_REGIONS,
    # InTouch has no public sandbox: test agencies live on the production host.
    base_urls={"sandbox": GU_BASE_URL, "production": GU_BASE_URL},
    credentials=(
        CredentialField("agency_code", "InTouch agency code"),
        CredentialField(
            "secure_code", "TouchPay secure code (tied to the domain below)", secret=True
        ),
        CredentialField("domain_name", "the domain registered with InTouch for TouchPay"),
        CredentialField("login_api", "GU API login (check_status, HTTP Digest)"),
        CredentialField("password_api", "GU API password", secret=True),
        CredentialField("partner_id", "GU partner id (check_status)"),
        CredentialField("callback_username", "the HTTP Basic user InTouch sends with callbacks"),
        CredentialField("callback_password", "the HTTP Basic password InTouch sends", secret=True),
        CredentialField("login_agent", "GU agent login (push only)", required=False),
        CredentialField(
            "password_agent", "GU agent password (push only)", secret=True, required=False
        ),
        CredentialField(
            "service_code",
            "GU collection service, e.g. an Orange Money Senegal code (push only; unverified)",
            required=False,
        ),
        CredentialField(
            "currency",
            "the agency's currency, to cross-check amounts check_status reports",
            required=False,
            choices=("XOF", "XAF"),
        ),
    ),
    manual_refunds=True,  # no refund API
    capabilities=frozenset(
        {Capability.HOSTED, Capability.PUSH, Capability.STATUS, Capability.CALLBACKS}
    ),
    default_flow=Capability.HOSTED,
    adapter_factory=InTouchAdapter,
    confirm_before_credit=True,
    callback_verifiers=basic_verifiers,
    simulator_credentials={
        "agency_code": "SNSANDBOX01",
        "secure_code": "sandbox-secure-code-7f3a9c2e",
        "domain_name": "localhost",
        "login_api": "sandbox-api",
        "password_api": "sandbox-api-password",
        "partner_id": "SANDBOX-PARTNER-01",
        "callback_username": "sandbox-touchpay",
        "callback_password": "sandbox-touchpay-password",
        "login_agent": "sandbox-agent",
        "password_agent": "sandbox-agent-password",
        "service_code": "SN_PAIEMENTMARCHAND_OM_TP",
        "currency": "XOF",
    },
    simulator_path="/intouch/apidist/sec",
    callback_authentication="path secret + HTTP Basic per merchant; optional HMAC header",
    source_of_truth="check_status",
)
