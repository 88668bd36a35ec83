"""An Ameriabank vPOS 3.1 simulator, served by the sandbox under ``/ameria``.

The vPOS answers under ``/ameria/VPOS`` (point ``MALIPO_AMERIA_BASE_URL`` there):

- ``POST /VPOS/api/VPOS/InitPayment`` ``{ClientID, Username, Password, OrderID: int,
  Amount: drams, Currency: "051", Description, BackURL, Opaque}`` →
  ``{PaymentID, ResponseCode: 1, ResponseMessage}``; refusals keep HTTP 200 with
  another ResponseCode (20 wrong login, 4 missing field, 50 amount, 3 currency,
  510 bad field, 8204 OrderID registered already).
- ``GET /VPOS/Payments/Pay?id=<PaymentID>&lang=en``: the customer's page (the shared
  ``sandbox.hosted`` page: Pay / Decline). Afterwards the browser is sent to
  ``BackURL?orderID=<OrderID>&resposneCode=<code>&paymentID=<PaymentID>&opaque=<Opaque>``
  (``resposneCode`` sic: Ameria's spelling as integrators observe it, unverified),
  ``00`` when paid, the decline's code else; nothing is signed.
- ``POST /VPOS/api/VPOS/GetPaymentDetails`` ``{PaymentID, Username, Password}`` →
  the document's fields: ``OrderStatus`` 0 started (ResponseCode ``"0-100"``), 2
  deposited (or 1 approved on a two-stage vPOS) with ``"00"``, 6 declined with the
  decline code; ``"20"`` wrong login, ``"06"`` unknown PaymentID.

- ``POST /VPOS/api/VPOS/RefundPayment`` ``{PaymentID, Username, Password, Amount: drams}``
  → ``{ResponseCode: "00", ResponseMessage, Opaque}`` synchronously, up to what is left
  of a deposited order (OrderStatus 4 once nothing is); ``RefundedAmount`` in
  GetPaymentDetails is the running total. Refusals: "20" login, "06" unknown PaymentID,
  "0-100" not deposited, "50" more than is left, a scenario's ``refund_decline``.

No callback is ever made: only GetPaymentDetails tells.

Built-in account: ClientID ``sandbox-ameria-client``, Username ``7e20a51c93``,
Password ``sndBx4q`` (shaped like Ameria's test login, not it). Orders are kept
by PaymentID; ``extra["merchant_ref"]`` is the Opaque (malipo's attempt reference).

Controls (under ``/ameria``): ``POST /_sim/orders/{key}/decide {"choice": "pay" |
"decline"}`` (key: PaymentID, Opaque or OrderID); ``GET /_sim/orders[/{key}]``;
``POST /_sim/orders/{key}/status {"order_status": 0-6, "response_code"?}``;
``GET``/``POST /_sim/accounts`` (``{"client_id"?, "username"?, "password"?}``: a
merchant of its own, missing values generated; OrderIDs are unique per merchant);
``POST``/``GET``/``DELETE /_sim/scenarios`` (``sandbox.ameria.scenarios``: matched by
amount in drams; ``page_delay_s``, ``status_lag_s``, ``init_error``, ``decline_code``,
``forged_return``, ``two_step``, ``refund_decline``, ``refund_delay_s``);
``GET /_sim/transfers?order=<key>`` (every refund made: the witness, ``times_moved`` 1
each); ``GET /_sim/requests?kind=init|details|refund|page``
(passwords redacted); ``POST /_sim/reset`` (added accounts too); ``GET /_sim/health``.
"""

from __future__ import annotations

from sandbox.ameria.app import AmeriaSimulator, create_ameria_simulator
from sandbox.config import SimulatorConfig
from sandbox.mounts import MountedSimulator

PREFIX = "/ameria"

__all__ = ["PREFIX", "AmeriaSimulator", "create_ameria_simulator", "mount"]


def mount(config: SimulatorConfig) -> MountedSimulator:
    """The simulator, served by the sandbox under ``/ameria``."""
    simulator = create_ameria_simulator(config)
    return MountedSimulator(
        prefix=PREFIX, app=simulator.app, close=simulator.close, state=simulator
    )
