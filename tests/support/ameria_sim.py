"""A client for the Ameria simulator's controls (``/ameria/_sim``), like ``intouch_sim.py``.

Orders are found by their PaymentID, by the Opaque malipo sent (the attempt's
reference) or by their OrderID.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sandbox.ameria import mount
from sandbox.config import SimulatorConfig
from sandbox.mounts import MountedSimulator
from tests.support.serving import serving_wsgi
from tests.support.sim_controls import SimControls

# The built-in account (sandbox/ameria/state.py; shared/gateways/ameria keeps the same values).
CLIENT_ID = "sandbox-ameria-client"
USERNAME = "7e20a51c93"
PASSWORD = "sndBx4q"


class AmeriaSimulator(SimControls):
    """Order keys: PaymentID, Opaque or OrderID; request kinds ``init``, ``details``,
    ``page`` (passwords redacted); e.g. ``scenario(match={"amount": 5000}, status_lag_s=1,
    decline_code="0116")``; ``reset`` forgets every order, request, scenario and added
    account."""

    def new_account(self) -> dict[str, str]:
        """A fresh merchant of its own: its credentials in the shape malipo stores them
        (``store_gateway_credentials(..., "ameria", ...)``)."""
        account: dict[str, str] = self._call("POST", "/accounts", json={})
        return {
            "client_id": account["client_id"],
            "username": account["username"],
            "password": account["password"],
            "two_step": "no",
        }

    def accounts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/accounts")["accounts"]
        return result

    def set_status(self, key: str, order_status: int, response_code: str = "00") -> dict[str, Any]:
        """What the bank's side does without the customer (a void: 3, a refund: 4)."""
        result: dict[str, Any] = self._call(
            "POST",
            f"/orders/{key}/status",
            json={"order_status": order_status, "response_code": response_code},
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

    ``root`` is ``http://127.0.0.1:<port>``; the API is under ``{root}/ameria/VPOS``.
    """
    mounted = mount(config or SimulatorConfig())
    try:
        with serving_wsgi(mounted) as root:
            yield mounted, root
    finally:
        mounted.close()
