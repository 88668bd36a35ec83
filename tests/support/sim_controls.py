"""What every hosted-page simulator's control client (``tests/support/<gateway>_sim.py``)
does the same way: call ``<mount>/_sim/…``, and the orders, page, scenario, records,
reset and health controls they all have. Each gateway's client adds its own."""

from __future__ import annotations

from typing import Any

import requests


class SimControls:
    def __init__(self, base_url: str) -> None:
        """``base_url``: the simulator's mount, ``http://127.0.0.1:<port>/<gateway>``."""
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base_url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def close(self) -> None:
        self.http.close()

    def decide(self, key: str, choice: str) -> dict[str, Any]:
        """The customer's ``"pay"`` or ``"decline"`` on the page, without a browser; the
        answer is the order with ``return_url``, where the browser would go."""
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

    def scenario(self, **scenario: Any) -> dict[str, Any]:
        """E.g. ``scenario(match={"amount": 5000}, page_delay_s=1)``; the keys are the
        gateway's (its ``sandbox/<gateway>/scenarios.py``)."""
        result: dict[str, Any] = self._call("POST", "/scenarios", json=scenario)
        return result

    def clear_scenarios(self) -> None:
        self._call("DELETE", "/scenarios")

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Requests to the gateway's side as received (secrets redacted), of one ``kind``."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/requests", params={"kind": kind} if kind else None
        )["requests"]
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result
