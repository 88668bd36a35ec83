"""A client for the ArCa simulator's controls (``/arca/_sim``), like ``intouch_sim.py``.

Orders are found by their orderId or by the orderNumber malipo sent (the
attempt's reference, with or without its dashes).
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests

from sandbox.arca import mount
from sandbox.config import SimulatorConfig
from sandbox.mounts import MountedSimulator

# The built-in merchant (sandbox/arca/state.py; shared/gateways/arca keeps the same values).
USERNAME = "sandbox_ipay_api"
PASSWORD = "ipaySandb0x"


class ArcaSimulator:
    def __init__(self, base_url: str) -> None:
        """``base_url``: the simulator's mount, ``http://127.0.0.1:<port>/arca``."""
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base_url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def close(self) -> None:
        self.http.close()

    def new_account(self) -> dict[str, str]:
        """A fresh merchant of its own: its credentials in the shape malipo stores them
        (``store_gateway_credentials(..., "arca", ...)``)."""
        account: dict[str, str] = self._call("POST", "/accounts", json={})
        return {"username": account["username"], "password": account["password"], "two_step": "no"}

    def accounts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/accounts")["accounts"]
        return result

    def decide(self, key: str, choice: str) -> dict[str, Any]:
        """The customer pays (``"pay"``) or declines on the page; the answer has ``return_url``."""
        result: dict[str, Any] = self._call(
            "POST", f"/orders/{key}/decide", json={"choice": choice}
        )
        return result

    def scenario(self, **scenario: Any) -> dict[str, Any]:
        """``scenario(match={"amount": 500000}, status_lag_s=1, decline_code=116, ...)``:
        the amount in luma, as register.do carries it."""
        result: dict[str, Any] = self._call("POST", "/scenarios", json=scenario)
        return result

    def clear_scenarios(self) -> None:
        self._call("DELETE", "/scenarios")

    def orders(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/orders")["orders"]
        return result

    def order(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/orders/{key}")
        return result

    def set_status(self, key: str, order_status: int, action_code: int = 0) -> dict[str, Any]:
        """What the engine's side does without the customer (a reversal: 3, a refund: 4)."""
        result: dict[str, Any] = self._call(
            "POST",
            f"/orders/{key}/status",
            json={"order_status": order_status, "action_code": action_code},
        )
        return result

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Requests as received (passwords redacted): ``register``, ``status``, ``page``."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/requests", params={"kind": kind} if kind else None
        )["requests"]
        return result

    def reset(self) -> None:
        """Forget every order, request, scenario and added account."""
        self._call("POST", "/reset")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result


# -- serving the simulator on a free port --------------------------------------------------------


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(config: SimulatorConfig | None = None) -> Iterator[tuple[MountedSimulator, str]]:
    """The simulator as the sandbox mounts it, on a real HTTP server: (mounted, root URL).

    ``root`` is ``http://127.0.0.1:<port>``; the API is under ``{root}/arca/payment/rest``.
    """
    mounted = mount(config or SimulatorConfig())
    server = make_server(
        "127.0.0.1", 0, mounted, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield mounted, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        mounted.close()
