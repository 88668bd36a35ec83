"""Pay by FastShift (Armenia): the FastShift wallet's hosted page, in AMD.

malipo registers an order (``order/register``, Bearer token) and sends the
customer to the page FastShift answers with; the customer confirms in the
FastShift app. FastShift's webhook (``status`` and ``order_number``) is not
signed, so it only triggers ``order/status``, which is asked before every credit.
Test and live tokens use the same host (FastShift has no separate sandbox host).
"""

from __future__ import annotations

from typing import Final

from shared.gateways.base import Capability
from shared.gateways.description import CredentialField, GatewayDescription
from shared.gateways.fastshift.client import FastShiftAdapter

BASE_URL: Final = "https://merchants.fastshift.am/api/en/vpos"
# The local simulator's built-in account (sandbox/fastshift/state.py keeps the same value).
SIMULATOR_API_TOKEN: Final = "sandbox-fastshift-token"  # noqa: S105

DESCRIPTION = GatewayDescription(
    name="fastshift",
    title="FastShift (Pay by FastShift)",
    callback_segment="fastshift",
    currencies=("AMD",),
    phone_regions=("AM",),
    base_urls={"sandbox": BASE_URL, "production": BASE_URL},
    credentials=(
        CredentialField(
            "api_token", "the Bearer token FastShift issued for the merchant", secret=True
        ),
    ),
    manual_refunds=True,  # no refund API
    capabilities=frozenset({Capability.HOSTED, Capability.STATUS, Capability.CALLBACKS}),
    default_flow=Capability.HOSTED,
    adapter_factory=FastShiftAdapter,
    sandbox_values=frozenset({SIMULATOR_API_TOKEN}),
    # The webhook is unsigned: every success is confirmed with order/status first.
    confirm_before_credit=True,
    simulator_credentials={"api_token": SIMULATOR_API_TOKEN},
    simulator_path="/fastshift/api/en/vpos",
    pay_page=True,
    callback_authentication="path secret only (FastShift signs nothing)",
    source_of_truth="order/status",
)
