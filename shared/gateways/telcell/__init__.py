"""Telcell Money: Armenian wallet payments on Telcell's own page, reported by a signed form.

The browser follows a signed invoice link to Telcell; Telcell posts the invoice's
end (``PAID``, or a refusal) to the RESULT_URL typed into its merchant cabinet, and
sends the customer to the cabinet's success or fail page: malipo's
``/callbacks/telcell/<secret>`` and ``/pay/return``. No status API, no refunds.
"""

from __future__ import annotations

from shared.gateways.base import Capability
from shared.gateways.description import CredentialField, GatewayDescription
from shared.gateways.telcell.client import TelcellAdapter
from shared.gateways.telcell.wire import LANGUAGES

BASE_URL = "https://telcellmoney.am"

DESCRIPTION = GatewayDescription(
    name="telcell",
    title="Telcell Money",
    callback_segment="telcell",
    currencies=("AMD",),
    phone_regions=("AM",),
    # Telcell has no public sandbox: test shops live on the production host.
    base_urls={"sandbox": BASE_URL, "production": BASE_URL},
    credentials=(
        CredentialField("shop_id", "the shop's Telcell id (the invoice issuer)"),
        CredentialField("shop_key", "the shop key Telcell signs with", secret=True),
        CredentialField(
            "language",
            "the language of Telcell's page",
            required=False,
            choices=LANGUAGES,
            default="en",
        ),
    ),
    manual_refunds=True,  # no refund API
    capabilities=frozenset({Capability.HOSTED, Capability.CALLBACKS}),
    default_flow=Capability.HOSTED,
    adapter_factory=TelcellAdapter,
    confirm_before_credit=False,
    simulator_credentials={
        "shop_id": "sandbox-shop@telcell.test",
        "shop_key": "sandbox-telcell-shop-key-5e1b7c",
        "language": "en",
    },
    simulator_path="/telcell",
    pay_page=True,
    result_url_in_cabinet=True,
    callback_authentication="path secret; MD5 checksum with the shop key",
    source_of_truth="the signed result (no status API)",
)
