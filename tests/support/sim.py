"""A client for the Daraja simulator's control API (``/_sim``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests


class Simulator:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base_url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        self._call("POST", "/reset")

    def scenario(self, **scenario: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/scenarios", json=scenario)
        return result

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "GET", "/requests", params={"kind": kind} if kind else None
        )
        return result

    def callbacks(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/callbacks")
        return result

    def transactions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/transactions")
        return result

    def resend(self, checkout_request_id: str) -> None:
        self._call("POST", f"/callbacks/{checkout_request_id}/resend")

    def revoke_tokens(self) -> None:
        self._call("POST", "/tokens/revoke")

    def add_shortcode(self, shortcode: str, passkey: str) -> None:
        self._call("POST", "/shortcodes", json={"shortcode": shortcode, "passkey": passkey})

    def add_app(self, consumer_key: str, consumer_secret: str) -> None:
        self._call(
            "POST", "/apps", json={"consumer_key": consumer_key, "consumer_secret": consumer_secret}
        )

    def inject_discrepancy(self, **discrepancy: Any) -> dict[str, Any]:
        """Make the shortcode's statement disagree (see sandbox/daraja/statement.py)."""
        result: dict[str, Any] = self._call("POST", "/statement/discrepancies", json=discrepancy)
        return result

    def clear_discrepancies(self) -> None:
        self._call("DELETE", "/statement/discrepancies")

    def statement_csv(
        self, shortcode: str, start: datetime, end: datetime, variant: str | None = None
    ) -> str:
        """The organisation portal's statement of ``shortcode`` over the window, as CSV text."""
        params = {"shortcode": shortcode, "from": start.isoformat(), "to": end.isoformat()}
        if variant:
            params["variant"] = variant
        response = self.http.get(f"{self.base_url}/_sim/statement.csv", params=params, timeout=10)
        response.raise_for_status()
        return response.text
