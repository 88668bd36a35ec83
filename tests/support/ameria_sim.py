"""A client for the Ameria simulator's controls (``/ameria/_sim``), like ``intouch_sim.py``.

Orders are found by their PaymentID, by the Opaque malipo sent (the attempt's
reference) or by their OrderID.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests

from sandbox.ameria import mount
from sandbox.config import SimulatorConfig
from sandbox.mounts import MountedSimulator

# The built-in account (sandbox/ameria/state.py; shared/gateways/ameria keeps the same values).
CLIENT_ID = "sandbox-ameria-client"
USERNAME = "7e20a51c93"
PASSWORD = "sndBx4q"


class AmeriaSimulator:
    def __init__(self, base_url: str) -> None:
        """``base_url``: the simulator's mount, ``http://127.0.0.1:<port>/ameria``."""
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

    def decide(self, key: str, choice: str) -> dict[str, Any]:
        """The customer pays (``"pay"``) or declines on the page; the answer has ``return_url``."""
        result: dict[str, Any] = self._call(
            "POST", f"/orders/{key}/decide", json={"choice": choice}
        )
        return result

    def scenario(self, **scenario: Any) -> dict[str, Any]:
        """``scenario(match={"amount": 5000}, status_lag_s=1, decline_code="0116", ...)``."""
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

    def set_status(self, key: str, order_status: int, response_code: str = "00") -> dict[str, Any]:
        """What the bank's side does without the customer (a void: 3, a refund: 4)."""
        result: dict[str, Any] = self._call(
            "POST",
            f"/orders/{key}/status",
            json={"order_status": order_status, "response_code": response_code},
        )
        return result

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Requests as received (passwords redacted): ``init``, ``details``, ``page``."""
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

    ``root`` is ``http://127.0.0.1:<port>``; the API is under ``{root}/ameria/VPOS``.
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
