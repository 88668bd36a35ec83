"""A client for the FastShift simulator's controls (``/fastshift/_sim``), like ``intouch_sim``."""

from __future__ import annotations

import uuid
from typing import Any

import requests

# The simulator's built-in account (sandbox/fastshift/state.py; the description's credentials).
BUILTIN_TOKEN = "sandbox-fastshift-token"


class FastShiftSimulator:
    def __init__(self, base_url: str) -> None:
        """``base_url``: the simulator's mount, ``http://127.0.0.1:<port>/fastshift``."""
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base_url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def close(self) -> None:
        self.http.close()

    @property
    def api_url(self) -> str:
        """Where ``MALIPO_FASTSHIFT_BASE_URL`` points: the merchant API's root."""
        return f"{self.base_url}/api/en/vpos"

    # -- accounts ---------------------------------------------------------------------------------

    def new_account(self, name: str | None = None) -> dict[str, str]:
        """A fresh account of its own: its credentials in the shape malipo stores them
        (``store_gateway_credentials(..., "fastshift", ...)``)."""
        token = f"fs-test-{uuid.uuid4().hex}"
        self._call("POST", "/accounts", json={"token": token, "name": name or "test"})
        return {"api_token": token}

    def accounts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/accounts")["accounts"]
        return result

    # -- orders -----------------------------------------------------------------------------------

    def decide(self, key: str, choice: str) -> dict[str, Any]:
        """The customer's choice on FastShift's page, without a browser: ``"pay"`` or
        ``"decline"``. ``key`` is FastShift's order_guid or our order_number (attempt_ref).
        The answer is the order with ``return_url``, where the browser would go."""
        result: dict[str, Any] = self._call(
            "POST", f"/orders/{key}/decide", json={"choice": choice}
        )
        return result

    def orders(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/orders")["orders"]
        return result

    def order(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/orders/{key}")
        return result

    def resend(self, key: str) -> None:
        """Send the decided order's webhook again, now."""
        self._call("POST", f"/orders/{key}/resend")

    def expire(self, key: str) -> dict[str, Any]:
        """Expire an undecided order now."""
        result: dict[str, Any] = self._call("POST", f"/orders/{key}/expire")
        return result

    # -- scenarios --------------------------------------------------------------------------------

    def scenario(self, **scenario: Any) -> dict[str, Any]:
        """E.g. ``scenario(match={"amount": 5000}, result="none", status_lag_s=1)``;
        keys: result (once|twice|none), webhook_delay_s, webhook_format (json|form),
        page_delay_s, status_lag_s, expire_after_s, register_error, register_delay_s."""
        result: dict[str, Any] = self._call("POST", "/scenarios", json=scenario)
        return result

    def clear_scenarios(self) -> None:
        self._call("DELETE", "/scenarios")

    # -- records ----------------------------------------------------------------------------------

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Requests as received (tokens redacted): ``register``, ``status``, ``page``."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/requests", params={"kind": kind} if kind else None
        )["requests"]
        return result

    def deliveries(self, order_number: str | None = None) -> list[dict[str, Any]]:
        """Webhook attempts (``status`` when answered, else ``error``)."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/deliveries", params={"order_number": order_number} if order_number else None
        )["deliveries"]
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result
