"""A FastShift ("Pay by FastShift") simulator, served by the sandbox under ``/fastshift``.

The merchant API answers under ``/fastshift/api/en/vpos`` (point
``MALIPO_FASTSHIFT_BASE_URL`` there), behind ``Authorization: Bearer <token>``:

* ``POST /order/register`` ``{order_number: guid, amount: whole drams, description,
  callback_url, webhook_url?, external_order_id?}`` → ``{"status": "OK", "data":
  {"order": {order_number, order_guid, amount, status: "pending", …}, "redirect_url"}}``,
  the redirect URL being ``<sandbox>/fastshift/pay/<order_guid>``;
* ``GET /order/status/{order_number}`` → ``{"status": "OK", "data": {"order": {…,
  status: pending|completed|rejected|expired}, "fastshift_id"}}``; 404 ``NOT_FOUND``.

The customer's page (``/fastshift/pay/<order_guid>``) is the shared hosted page:
Pay / Decline, or ``POST /fastshift/_sim/orders/{order_guid or order_number}/decide``
``{"choice": "pay"|"decline"}`` without a browser. A decision makes the order
``completed`` or ``rejected``, POSTs ``{status, order_number}`` (unsigned, JSON
unless the scenario says ``"webhook_format": "form"``) to ``webhook_url``, and sends
the browser to ``callback_url?status=…&order_number=…`` (one URL for both outcomes).
Undecided orders stay pending unless a scenario gives them ``expire_after_s``.

Built-in account: token ``sandbox-fastshift-token``; ``POST /_sim/accounts``
``{"token"?: …, "name"?: …}`` adds one (its token in the answer).
``SANDBOX_FASTSHIFT_PAGE_URL`` overrides the base of redirect URLs (default: the
address the register request came to).

Controls (under ``/fastshift/_sim``): ``POST``/``GET``/``DELETE /scenarios`` (see
``scenarios.py``: ``result`` once|twice|none, ``webhook_delay_s``,
``webhook_format``, ``page_delay_s``, ``status_lag_s``, ``expire_after_s``,
``register_error``, ``register_delay_s``, matched by ``amount`` or ``order_number``);
``GET /orders[/{id}]``, ``POST /orders/{id}/decide|resend|expire``; ``GET``/``POST
/accounts``; ``GET /requests[?kind=register|status|page]`` (tokens redacted);
``GET /deliveries[?order_number=]``; ``POST /reset``; ``GET /health``.
"""

from __future__ import annotations

from sandbox.config import SimulatorConfig
from sandbox.fastshift.app import FastShiftSimulator, create_fastshift_simulator
from sandbox.mounts import MountedSimulator

PREFIX = "/fastshift"

__all__ = ["PREFIX", "FastShiftSimulator", "create_fastshift_simulator", "mount"]


def mount(config: SimulatorConfig) -> MountedSimulator:
    """The simulator, served by the sandbox under ``/fastshift``."""
    simulator = create_fastshift_simulator(config)
    return MountedSimulator(
        prefix=PREFIX, app=simulator.app, close=simulator.close, state=simulator
    )
