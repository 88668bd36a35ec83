"""A client for the ArCa simulator's controls (``/arca/_sim``), like ``intouch_sim.py``.

Orders are found by their orderId or by the orderNumber malipo sent (the
attempt's reference, with or without its dashes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sandbox.arca import mount
from sandbox.config import SimulatorConfig
from sandbox.mounts import MountedSimulator
from tests.support.serving import serving_wsgi
from tests.support.sim_controls import SimControls

# The built-in merchant (sandbox/arca/state.py; shared/gateways/arca keeps the same values).
USERNAME = "sandbox_ipay_api"
PASSWORD = "ipaySandb0x"


class ArcaSimulator(SimControls):
    """Order keys: orderId or orderNumber; request kinds ``register``, ``status``, ``page``
    (passwords redacted); e.g. ``scenario(match={"amount": 500000}, status_lag_s=1,
    decline_code=116)``, the amount in luma as register.do carries it; ``reset`` forgets
    every order, request, scenario and added account."""

    def new_account(self) -> dict[str, str]:
        """A fresh merchant of its own: its credentials in the shape malipo stores them
        (``store_gateway_credentials(..., "arca", ...)``)."""
        account: dict[str, str] = self._call("POST", "/accounts", json={})
        return {"username": account["username"], "password": account["password"], "two_step": "no"}

    def accounts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/accounts")["accounts"]
        return result

    def set_status(self, key: str, order_status: int, action_code: int = 0) -> dict[str, Any]:
        """What the engine's side does without the customer (a reversal: 3, a refund: 4)."""
        result: dict[str, Any] = self._call(
            "POST",
            f"/orders/{key}/status",
            json={"order_status": order_status, "action_code": action_code},
        )
        return result

    def transfers(self, order: str | None = None) -> list[dict[str, Any]]:
        """The witness: every refund the bank made (of one order: its id or reference),
        oldest first, each with ``times_moved`` (always 1)."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/transfers", params={"order": order} if order else None
        )["transfers"]
        return result


# -- serving the simulator on a free port --------------------------------------------------------


@contextmanager
def serving(config: SimulatorConfig | None = None) -> Iterator[tuple[MountedSimulator, str]]:
    """The simulator as the sandbox mounts it, on a real HTTP server: (mounted, root URL).

    ``root`` is ``http://127.0.0.1:<port>``; the API is under ``{root}/arca/payment/rest``.
    """
    mounted = mount(config or SimulatorConfig())
    try:
        with serving_wsgi(mounted) as root:
            yield mounted, root
    finally:
        mounted.close()
