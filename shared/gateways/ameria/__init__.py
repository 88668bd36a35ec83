"""Ameriabank vPOS 3.1 (Armenia): card payments in AMD on Ameria's own page.

malipo registers the order (``InitPayment``), the customer pays on
``{base}/Payments/Pay?id=<PaymentID>``, and the browser comes back to malipo's
return page (``BackURL``). Ameria makes no server-to-server callback and signs
nothing it sends back with the browser, so ``GetPaymentDetails`` is the only
source of truth: every outcome comes from the status API.

Refunds (``RefundPayment``) are synchronous: "00" is final, and a lost answer
is settled by GetPaymentDetails' ``RefundedAmount``. No payouts. Out of scope for
now: two-stage deposit (``ConfirmPayment``) and ``CancelPayment``.
"""

from __future__ import annotations

from typing import Final

from shared.gateways import bpc
from shared.gateways.ameria.client import AmeriaAdapter
from shared.gateways.base import Capability
from shared.gateways.description import CredentialField, GatewayDescription

# The simulator's built-in account (sandbox/ameria/state.py keeps the same values):
# shaped like Ameria's, not Ameria's.
SIMULATOR_CLIENT_ID: Final = "sandbox-ameria-client"
SIMULATOR_USERNAME: Final = "7e20a51c93"
SIMULATOR_PASSWORD: Final = "sndBx4q"  # noqa: S105
# Ameria's public test-environment login, printed in its vPOS 3.1 document.
PUBLIC_TEST_LOGIN: Final = frozenset({"3d19541048", "lazY2k"})

DESCRIPTION = GatewayDescription(
    name="ameria",
    title="Ameriabank vPOS",
    callback_segment="ameria",
    currencies=("AMD",),
    phone_regions=("AM",),
    base_urls={
        "sandbox": "https://servicestest.ameriabank.am/VPOS",
        "production": "https://services.ameriabank.am/VPOS",
    },
    credentials=(
        CredentialField("client_id", "Ameria vPOS ClientID (the merchant's GUID)"),
        CredentialField("username", "Ameria vPOS API username"),
        CredentialField("password", "Ameria vPOS API password", secret=True),
        bpc.two_step_field("Ameriabank"),
        CredentialField(
            "order_id_range",
            "the OrderID range Ameria assigned, as low-high (its test environment assigns one)",
            required=False,
        ),
    ),
    serial_refunds=True,  # a lost refund answer is settled by the refunded total
    capabilities=frozenset({Capability.HOSTED, Capability.STATUS, Capability.REFUND}),
    default_flow=Capability.HOSTED,
    adapter_factory=AmeriaAdapter,
    sandbox_values=frozenset(
        {SIMULATOR_CLIENT_ID, SIMULATOR_USERNAME, SIMULATOR_PASSWORD} | PUBLIC_TEST_LOGIN
    ),
    simulator_credentials={
        "client_id": SIMULATOR_CLIENT_ID,
        "username": SIMULATOR_USERNAME,
        "password": SIMULATOR_PASSWORD,
        "two_step": "no",
    },
    simulator_path="/ameria/VPOS",
    pay_page=True,
    callback_authentication="none: no callback; the browser's return (BackURL) is unsigned",
    source_of_truth="GetPaymentDetails",
)
