"""An InTouch (TouchPay / GU) simulator, served by the sandbox under ``/intouch``.

GU's API answers under ``/intouch/apidist/sec`` (point ``MALIPO_INTOUCH_BASE_URL``
there): ``PUT /touchpayapi/{agency}/transaction?loginAgent=…&passwordAgent=…``
(direct collection) and ``POST /v1/{agency}/check_status``, both behind HTTP
Digest (MD5, qop=auth) with the agency's API login.

TouchPay's hosted flow: the browser's SDK call is ``POST /_sim/touchpay/checkout``
with the SDK parameters as JSON (``/_sim/touchpay/sdk.js`` is a stand-in SDK that
does so). After the outcome's delay "the customer pays": a GET with the TouchPay
fields in its query string goes to the agency's ``callback_url``, with the
agency's Basic credentials. A GU push's callback is a JSON POST to its ``callback``.

Built-in agency ``SNSANDBOX01`` (Senegal, +221): secure code
``sandbox-secure-code-7f3a9c2e``, domain ``localhost``, agent
``sandbox-agent``/``sandbox-agent-password``, API ``sandbox-api``/
``sandbox-api-password``, partner ``SANDBOX-PARTNER-01``, services
``SN_PAIEMENTMARCHAND_OM_TP`` and ``SN_PAIEMENTMARCHAND_WAVE_TP``, callback Basic
``sandbox-touchpay``/``sandbox-touchpay-password``, no callback URL unless
``SANDBOX_INTOUCH_CALLBACK_URL`` says one (also: ``SANDBOX_INTOUCH_DOMAIN``,
``SANDBOX_INTOUCH_CALLBACK_JSON_BODY=1``).

Built-in phones (any form: ``770000001``, ``+221770000001``):

=================  ===========================================
221770000001       fails, one callback
221770000002       succeeds, no callback (only check_status tells)
221770000003       succeeds, the callback comes twice
221770000004       stays pending, no callback
221770000005       fails, no callback
anything else      succeeds, one callback
=================  ===========================================

Controls (under ``/intouch``): ``POST /_sim/scenarios`` ``{"match": {"phone": …} |
{"amount": …}, "outcome": "success"|"failed"|"pending", "callback":
"once"|"twice"|"none", "callback_delay_s"?: s, "push_error"?: {"status": 500,
"times": 1}}``; ``GET``/``DELETE /_sim/scenarios``; ``GET``/``POST /_sim/agencies``
(add with every field, or change some of an existing one: ``callback_url``,
``callback_username``, ``callback_password``, ``callback_json_body``, …);
``GET /_sim/requests`` (secrets redacted), ``GET /_sim/deliveries``,
``GET /_sim/transactions[/{order_number}]``,
``POST /_sim/transactions/{order_number}/resend``, ``POST /_sim/reset``,
``GET /_sim/health``.
"""

from __future__ import annotations

from sandbox.config import SimulatorConfig
from sandbox.intouch.app import InTouchSimulator, create_intouch_simulator
from sandbox.mounts import MountedSimulator

PREFIX = "/intouch"

__all__ = ["PREFIX", "InTouchSimulator", "create_intouch_simulator", "mount"]


def mount(config: SimulatorConfig) -> MountedSimulator:
    """The simulator, served by the sandbox under ``/intouch``."""
    simulator = create_intouch_simulator(config)
    return MountedSimulator(
        prefix=PREFIX, app=simulator.app, close=simulator.close, state=simulator
    )
