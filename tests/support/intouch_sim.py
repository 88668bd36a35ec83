"""A client for the InTouch simulator's controls (``/intouch/_sim``), like ``sim.py`` for Daraja."""

from __future__ import annotations

import uuid
from typing import Any

import requests

# The built-in agency's fixed values a fresh test agency reuses (sandbox/intouch/state.py):
# its services, and the domain TouchPay's secure code is tied to.
SERVICE_CODE = "SN_PAIEMENTMARCHAND_OM_TP"
DOMAIN_NAME = "localhost"


class InTouchSimulator:
    def __init__(self, base_url: str) -> None:
        """``base_url``: the simulator's mount, ``http://127.0.0.1:<port>/intouch``."""
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base_url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def close(self) -> None:
        self.http.close()

    # -- agencies ---------------------------------------------------------------------------------

    def new_agency(self) -> dict[str, str]:
        """A fresh agency of its own (so no test shares callback settings): its credentials,
        in the shape malipo stores them (``store_gateway_credentials(..., "intouch", ...)``)."""
        tag = uuid.uuid4().hex[:10]
        credentials = {
            "agency_code": f"SNTEST{tag.upper()}",
            "secure_code": f"secure-{tag}",
            "domain_name": DOMAIN_NAME,
            "login_api": f"api-{tag}",
            "password_api": f"api-password-{tag}",
            "partner_id": f"PARTNER-{tag}",
            "callback_username": f"touchpay-{tag}",
            "callback_password": f"touchpay-password-{tag}",
            "login_agent": f"agent-{tag}",
            "password_agent": f"agent-password-{tag}",
            "service_code": SERVICE_CODE,
            "currency": "XOF",
        }
        self.put_agency(
            {
                "agency_code": credentials["agency_code"],
                "secure_code": credentials["secure_code"],
                "domain_name": credentials["domain_name"],
                "login_agent": credentials["login_agent"],
                "password_agent": credentials["password_agent"],
                "login_api": credentials["login_api"],
                "password_api": credentials["password_api"],
                "partner_id": credentials["partner_id"],
                "service_codes": [SERVICE_CODE],
                "callback_username": credentials["callback_username"],
                "callback_password": credentials["callback_password"],
            }
        )
        return credentials

    def put_agency(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Add an agency (every field) or change some fields of an existing one."""
        result: dict[str, Any] = self._call("POST", "/agencies", json=fields)
        return result

    def set_callback(self, agency_code: str, url: str, username: str, password: str) -> None:
        """TouchPay's callback for the agency, as set in InTouch's back office."""
        self.put_agency(
            {
                "agency_code": agency_code,
                "callback_url": url,
                "callback_username": username,
                "callback_password": password,
            }
        )

    # -- payments ---------------------------------------------------------------------------------

    def checkout(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """What TouchPay's browser SDK sends when the customer pays (``sendPaymentInfos``)."""
        result: dict[str, Any] = self._call("POST", "/touchpay/checkout", json=parameters)
        return result

    def scenario(self, **scenario: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/scenarios", json=scenario)
        return result

    def resend(self, order_number: str) -> None:
        self._call("POST", f"/transactions/{order_number}/resend")

    def transaction(self, order_number: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/transactions/{order_number}")
        return result

    # -- records ----------------------------------------------------------------------------------

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        """API requests as received (secrets redacted): ``push``, ``check_status``, ``checkout``."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/requests", params={"kind": kind} if kind else None
        )["requests"]
        return result

    def deliveries(self, order_number: str | None = None) -> list[dict[str, Any]]:
        """Callback attempts (``status`` when answered, else ``error``)."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/deliveries", params={"order_number": order_number} if order_number else None
        )["deliveries"]
        return result
