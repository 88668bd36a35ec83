"""A client for the IntaSend simulator's control API (``/intasend/_sim``)."""

from __future__ import annotations

from typing import Any

import requests


class IntaSendSimulator:
    """``base_url`` is the sandbox's IntaSend prefix, e.g. ``http://127.0.0.1:<port>/intasend``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    @classmethod
    def for_sandbox_port(cls, port: int | str) -> IntaSendSimulator:
        return cls(f"http://127.0.0.1:{port}/intasend")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base_url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        """Forget everything (accounts, invoices, records) but the built-in account."""
        self._call("POST", "/reset")

    def clear_scenarios(self) -> None:
        self._call("DELETE", "/scenarios")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def add_account(self, **keys: str) -> dict[str, Any]:
        """A new merchant account (missing keys generated); its ``publishable_key`` etc."""
        result: dict[str, Any] = self._call("POST", "/accounts", json=keys)
        return result

    def set_webhook(self, public_key: str, url: str | None, challenge: str | None = None) -> None:
        """The account's dashboard webhook (``url=None`` removes it)."""
        self._call(
            "POST", "/webhooks", json={"public_key": public_key, "url": url, "challenge": challenge}
        )

    def scenario(self, **scenario: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/scenarios", json=scenario)
        return result

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        """API requests, oldest first (``kind``: stk_push, collection, status, chargeback,
        send_money, transactions or other)."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/requests", params={"kind": kind} if kind else None
        )
        return result

    def pushes(self, phone: str) -> list[dict[str, Any]]:
        """STK pushes received for ``phone`` (whatever they were answered)."""
        return [
            r
            for r in self.requests(kind="stk_push")
            if isinstance(r["body"], dict) and str(r["body"].get("phone_number")) == phone
        ]

    def status_queries(self, invoice_id: str) -> list[dict[str, Any]]:
        """``payment/status/`` requests about ``invoice_id``."""
        return [
            r
            for r in self.requests(kind="status")
            if isinstance(r["body"], dict) and r["body"].get("invoice_id") == invoice_id
        ]

    def deliveries(self, invoice_id: str | None = None) -> list[dict[str, Any]]:
        """Webhook delivery attempts, oldest first."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/deliveries", params={"invoice_id": invoice_id} if invoice_id else None
        )
        return result

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        """``{invoice: <the flat invoice now>, public_key, narrative, …, outcome…}``."""
        result: dict[str, Any] = self._call("GET", f"/invoices/{invoice_id}")
        return result

    def resend(self, invoice_id: str) -> dict[str, Any]:
        """Send the invoice's current state to the account's webhook again, now."""
        result: dict[str, Any] = self._call("POST", f"/invoices/{invoice_id}/resend")
        return result

    def transfer_scenario(self, **scenario: Any) -> dict[str, Any]:
        """E.g. ``transfer_scenario(match={"phone": "2547…"}, outcome="fail")``
        (``sandbox.intasend.transfers``: kind, outcome, webhook, delay_s, answer_delay_s,
        error)."""
        result: dict[str, Any] = self._call("POST", "/transfer-scenarios", json=scenario)
        return result

    def transfers(self) -> list[dict[str, Any]]:
        """The witness: per (kind, request_ref), every chargeback or payout made, their
        statuses and ``times_moved`` (how often money moved: must stay 1)."""
        result: list[dict[str, Any]] = self._call("GET", "/transfers")["transfers"]
        return result

    def transfer(self, request_ref: str) -> dict[str, Any] | None:
        """The witness of one request_ref, or None when nothing was made for it."""
        return next((t for t in self.transfers() if t["request_ref"] == request_ref), None)

    def inject_discrepancy(self, **body: Any) -> dict[str, Any]:
        """Make ``GET transactions/`` disagree, e.g. ``inject_discrepancy(kind="dropped",
        invoice_id=…)`` (``sandbox.intasend.control.DiscrepanciesResource``): the
        discrepancy, or for ``gateway_only`` the list's row of the invoice it made."""
        result: dict[str, Any] = self._call("POST", "/statement/discrepancies", json=body)
        return result

    def clear_discrepancies(self) -> None:
        """Forget every discrepancy (and the invoices ``gateway_only`` made)."""
        self._call("DELETE", "/statement/discrepancies")
