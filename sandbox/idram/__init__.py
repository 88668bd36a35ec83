"""An Idram simulator, served by the sandbox under ``/idram``.

Point ``MALIPO_IDRAM_BASE_URL`` at ``http://<sandbox>/idram``. The wire, as Idram
documents it (what is only our understanding is marked so):

* ``POST /Payment/GetPayment``: the merchant's form (``EDP_LANGUAGE,
  EDP_REC_ACCOUNT, EDP_DESCRIPTION, EDP_AMOUNT, EDP_BILL_NO, EDP_EMAIL``) posted by
  the browser. A known account and a good form open an order (its ``order_id`` is
  Idram's own id, ``extra["merchant_ref"]`` the bill number) and answer ``303`` to
  the order's page ``/_page/{order_id}`` (the shared hosted page: Pay / Decline);
  a bad form is an HTML error page (400; 409 for a bill posted again with another
  amount). Posting the same bill again opens the same order.
* Pay: first the precheck, a form post to the account's RESULT_URL
  (``EDP_PRECHECK=YES, EDP_BILL_NO, EDP_REC_ACCOUNT, EDP_AMOUNT``), sent at once
  while the customer waits; only an answer whose body is ``OK`` (whitespace aside)
  lets the payment happen, anything else (or no answer, or no RESULT_URL) declines
  the order. Then, after the sandbox's callback delay, the confirmation: a form with
  ``EDP_BILL_NO, EDP_REC_ACCOUNT, EDP_PAYER_ACCOUNT, EDP_AMOUNT, EDP_TRANS_ID``
  (14 digits, unique per payment), ``EDP_TRANS_DATE`` (dd/mm/yyyy, Yerevan) and
  ``EDP_CHECKSUM`` (MD5, upper-case hex, of ``EDP_REC_ACCOUNT:EDP_AMOUNT:SECRET_KEY:
  EDP_BILL_NO:EDP_PAYER_ACCOUNT:EDP_TRANS_ID:EDP_TRANS_DATE``). Sent once, never
  retried.
* Decline: nothing is sent (Idram reports payments only).
* Either way the browser goes to the cabinet's SUCCESS_URL or FAIL_URL with
  ``?EDP_BILL_NO=<bill>`` appended (our understanding; Idram's text only names the
  two pages).

The built-in account ``110000601`` (secret key ``sandbox-idram-secret-key-4d2f9a``)
works without setup; its cabinet is empty unless ``SANDBOX_IDRAM_RESULT_URL``,
``SANDBOX_IDRAM_SUCCESS_URL`` and ``SANDBOX_IDRAM_FAIL_URL`` say otherwise.

Controls (under ``/idram/_sim``): ``POST /cabinet`` ``{"EDP_REC_ACCOUNT", "secret_key"
(new accounts), "result_url", "success_url", "fail_url"}`` and ``GET /cabinet``;
``POST /scenarios`` (see :mod:`sandbox.idram.scenarios`: ``result`` once|twice|none,
``wrong_checksum``, ``precheck_amount``, ``page_delay_s``, ``result_delay_s``),
``GET``/``DELETE /scenarios``; ``POST /orders/{id or bill}/decide`` ``{"choice":
"pay"|"decline"}`` (the page's buttons without a browser); ``GET /orders``,
``GET /orders/{id or bill}``, ``POST /orders/{id or bill}/resend``;
``GET /requests``, ``GET /deliveries?order=``; ``POST /reset``; ``GET /health``.
"""

from __future__ import annotations

from sandbox.config import SimulatorConfig
from sandbox.idram.app import IdramSimulator, create_idram_simulator
from sandbox.mounts import MountedSimulator

PREFIX = "/idram"

__all__ = ["PREFIX", "IdramSimulator", "create_idram_simulator", "mount"]


def mount(config: SimulatorConfig) -> MountedSimulator:
    """The simulator, served by the sandbox under ``/idram``."""
    simulator = create_idram_simulator(config)
    return MountedSimulator(
        prefix=PREFIX, app=simulator.app, close=simulator.close, state=simulator
    )
