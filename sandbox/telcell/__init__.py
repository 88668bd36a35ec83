"""A Telcell Money simulator, served by the sandbox under ``/telcell``.

Point ``MALIPO_TELCELL_BASE_URL`` at ``http://<sandbox>/telcell``. The wire, as the
one documented integration has it (what is only our understanding is marked so):

* ``GET /invoices?action=PostInvoice&issuer=&currency=֏&price=&product=<base64>&
  issuer_id=<base64>&valid_days=&lang=&security_code=`` (the same fields posted as a
  form are taken too). ``security_code`` must be ``MD5(shop_key + issuer + currency +
  price + product + issuer_id + valid_days)`` with ``product`` and ``issuer_id``
  hashed base64-encoded, as sent. A good link opens an invoice (``order_id`` is
  Telcell's invoice id, ``extra["merchant_ref"]`` the decoded ``issuer_id``) and
  answers ``303`` to its page ``/_page/{invoice}`` (the shared hosted page); a bad
  one, or a wrong security code, is an HTML error page (400). Following the same
  link again opens the same invoice.
* Pay or decline: after the sandbox's callback delay a form is posted to the shop's
  RESULT_URL: ``issuer_id`` (base64, as sent), ``status`` (``PAID``; a decline is
  ``REJECTED``, as integrators handle it), ``invoice``, ``payment_id`` (unique; a
  rejection gets one too, unverified), ``currency=֏``, ``sum`` (the price as sent),
  ``time`` (``YYYY-MM-DD HH:MM:SS``, Yerevan; unverified) and ``checksum =
  MD5(shop_key + invoice + issuer_id + payment_id + currency + sum + time +
  status)``. Sent once, never retried.
* The browser goes to the cabinet's success or fail page as typed there (nothing
  appended: Telcell documents no return parameters).

The built-in shop ``sandbox-shop@telcell.test`` (shop key
``sandbox-telcell-shop-key-5e1b7c``) works without setup; its cabinet is empty
unless ``SANDBOX_TELCELL_RESULT_URL``, ``SANDBOX_TELCELL_SUCCESS_URL`` and
``SANDBOX_TELCELL_FAIL_URL`` say otherwise.

Controls (under ``/telcell/_sim``): ``POST /cabinet`` ``{"issuer", "shop_key" (new
shops), "result_url", "success_url", "fail_url"}`` and ``GET /cabinet``;
``POST /scenarios`` (see :mod:`sandbox.telcell.scenarios`: ``result``
once|twice|none, ``wrong_checksum``, ``page_delay_s``, ``result_delay_s``),
``GET``/``DELETE /scenarios``; ``POST /orders/{invoice or issuer_id}/decide``
``{"choice": "pay"|"decline"}``; ``GET /orders``, ``GET /orders/{key}``,
``POST /orders/{key}/resend``; ``GET /requests``, ``GET /deliveries?order=``;
``POST /reset``; ``GET /health``.
"""

from __future__ import annotations

from sandbox.config import SimulatorConfig
from sandbox.mounts import MountedSimulator
from sandbox.telcell.app import TelcellSimulator, create_telcell_simulator

PREFIX = "/telcell"

__all__ = ["PREFIX", "TelcellSimulator", "create_telcell_simulator", "mount"]


def mount(config: SimulatorConfig) -> MountedSimulator:
    """The simulator, served by the sandbox under ``/telcell``."""
    simulator = create_telcell_simulator(config)
    return MountedSimulator(
        prefix=PREFIX, app=simulator.app, close=simulator.close, state=simulator
    )
