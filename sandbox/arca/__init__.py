"""An ArCa iPay simulator (BPC's payment engine), served by the sandbox under ``/arca``.

The engine answers under ``/arca/payment/rest`` (point ``MALIPO_ARCA_BASE_URL`` there):

- ``POST /payment/rest/register.do`` (form: ``userName, password, orderNumber,
  amount`` in luma, ``currency=051, returnUrl, failUrl, description``) →
  ``{orderId, formUrl}`` or ``{errorCode, errorMessage}`` (5 "Access denied", 4
  missing parameter, 5 wrong value, 3 currency, 1 orderNumber registered already).
- ``GET /payment/merchants/ipay/payment.html?mdOrder=<orderId>`` (the ``formUrl``):
  the customer's page (the shared ``sandbox.hosted`` page: Pay / Decline).
  Afterwards the browser goes to ``returnUrl?orderId=<orderId>`` when paid, to
  ``failUrl?orderId=<orderId>`` (``returnUrl`` without one) when declined; unsigned.
- ``POST /payment/rest/getOrderStatusExtended.do`` (form: ``userName, password,
  orderId`` or ``orderNumber``) → ``{errorCode: "0", orderNumber, orderStatus,
  actionCode, amount, currency, authRefNum, cardAuthInfo, paymentAmountInfo, …}``:
  orderStatus 0 registered, 2 deposited (1 approved when two-stage) with actionCode
  0, 6 declined with the decline's actionCode; errorCode 6 unknown order.

- ``POST /payment/rest/refund.do`` (form: ``userName, password, orderId, amount`` in
  luma) → ``{errorCode: "0"}`` synchronously, up to what is left of a deposited order
  (orderStatus 4 once nothing is); ``paymentAmountInfo.refundedAmount`` is the running
  total. Refusals: 5 login or amount, 6 unknown order, 7 not deposited or more than is
  left, a scenario's ``refund_decline``.

No callback is ever made: only getOrderStatusExtended.do tells.

Built-in merchant: userName ``sandbox_ipay_api``, password ``ipaySandb0x`` (shaped
like ArCa's ``<merchant>_api`` logins, not one). Orders are kept by orderId;
``extra["merchant_ref"]`` is the orderNumber (malipo's attempt reference, dashes
removed; a key with the dashes finds it too).

Controls (under ``/arca``): ``POST /_sim/orders/{key}/decide {"choice": "pay" |
"decline"}``; ``GET /_sim/orders[/{key}]``; ``POST /_sim/orders/{key}/status
{"order_status": 0-6, "action_code"?}``; ``GET``/``POST /_sim/accounts``
(``{"username"?, "password"?}``: a merchant of its own, missing values generated;
orderNumbers are unique per merchant); ``POST``/``GET``/``DELETE /_sim/scenarios``
(``sandbox.arca.scenarios``: matched by amount in luma; ``page_delay_s``,
``status_lag_s``, ``init_error``, ``decline_code``, ``forged_return``, ``two_step``,
``refund_decline``, ``refund_delay_s``); ``GET /_sim/transfers?order=<key>`` (every
refund made: the witness, ``times_moved`` 1 each);
``GET /_sim/requests?kind=register|status|refund|page`` (passwords redacted);
``POST /_sim/reset`` (added accounts too); ``GET /_sim/health``.
"""

from __future__ import annotations

from sandbox.arca.app import ArcaSimulator, create_arca_simulator
from sandbox.config import SimulatorConfig
from sandbox.mounts import MountedSimulator

PREFIX = "/arca"

__all__ = ["PREFIX", "ArcaSimulator", "create_arca_simulator", "mount"]


def mount(config: SimulatorConfig) -> MountedSimulator:
    """The simulator, served by the sandbox under ``/arca``."""
    simulator = create_arca_simulator(config)
    return MountedSimulator(
        prefix=PREFIX, app=simulator.app, close=simulator.close, state=simulator
    )
