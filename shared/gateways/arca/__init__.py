"""ArCa iPay (Armenia): card payments in AMD on ArCa's page, on BPC's payment engine.

malipo registers the order (``register.do``), the customer pays on the
``formUrl`` it answers, and the browser comes back to malipo's return page
(``returnUrl`` / ``failUrl``). No callback is used and nothing the browser
brings back is signed, so ``getOrderStatusExtended.do`` is the only source of
truth: every outcome comes from the status API.

Refunds (``refund.do``) are synchronous: errorCode 0 is final, and a lost
answer is settled by ``paymentAmountInfo.refundedAmount``. No payouts. Out of
scope for now: two-stage deposit (``deposit.do``) and ``reverse.do``.
"""

from __future__ import annotations

from typing import Final

from shared.gateways import bpc
from shared.gateways.arca.client import ArcaAdapter
from shared.gateways.base import Capability
from shared.gateways.description import CredentialField, GatewayDescription

# The simulator's built-in API account (sandbox/arca/state.py keeps the same values).
SIMULATOR_USERNAME: Final = "sandbox_ipay_api"
SIMULATOR_PASSWORD: Final = "ipaySandb0x"  # noqa: S105

DESCRIPTION = GatewayDescription(
    name="arca",
    title="ArCa iPay",
    callback_segment="arca",
    currencies=("AMD",),
    phone_regions=("AM",),
    base_urls={
        "sandbox": "https://ipaytest.arca.am:8445/payment/rest",
        "production": "https://ipay.arca.am/payment/rest",
    },
    credentials=(
        CredentialField("username", "ArCa iPay API login (userName, e.g. <merchant>_api)"),
        CredentialField("password", "ArCa iPay API password", secret=True),
        bpc.two_step_field("ArCa"),
    ),
    serial_refunds=True,  # a lost refund answer is settled by the refunded total
    capabilities=frozenset({Capability.HOSTED, Capability.STATUS, Capability.REFUND}),
    default_flow=Capability.HOSTED,
    adapter_factory=ArcaAdapter,
    sandbox_values=frozenset({SIMULATOR_USERNAME, SIMULATOR_PASSWORD}),
    simulator_credentials={
        "username": SIMULATOR_USERNAME,
        "password": SIMULATOR_PASSWORD,
        "two_step": "no",
    },
    simulator_path="/arca/payment/rest",
    pay_page=True,
    callback_authentication="none: no callback; the browser's return (returnUrl) is unsigned",
    source_of_truth="getOrderStatusExtended.do",
)
