"""A client for the FastShift simulator's controls (``/fastshift/_sim``), like ``intouch_sim``."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.sim_controls import SimControls

# The simulator's built-in account (sandbox/fastshift/state.py; the description's credentials).
BUILTIN_TOKEN = "sandbox-fastshift-token"


class FastShiftSimulator(SimControls):
    """Order keys: FastShift's order_guid or our order_number (attempt_ref); request kinds
    ``register``, ``status``, ``page`` (tokens redacted); scenario keys: result
    (once|twice|none), webhook_delay_s, webhook_format (json|form), page_delay_s,
    status_lag_s, expire_after_s, register_error, register_delay_s."""

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

    def resend(self, key: str) -> None:
        """Send the decided order's webhook again, now."""
        self._call("POST", f"/orders/{key}/resend")

    def expire(self, key: str) -> dict[str, Any]:
        """Expire an undecided order now."""
        result: dict[str, Any] = self._call("POST", f"/orders/{key}/expire")
        return result

    # -- scenarios --------------------------------------------------------------------------------

    # -- records ----------------------------------------------------------------------------------

    def deliveries(self, order_number: str | None = None) -> list[dict[str, Any]]:
        """Webhook attempts (``status`` when answered, else ``error``)."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/deliveries", params={"order_number": order_number} if order_number else None
        )["deliveries"]
        return result
