"""A client for the Telcell simulator's controls (``/telcell/_sim``), like ``intouch_sim.py``."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

import requests

from tests.support.sim_controls import SimControls


class TelcellSimulator(SimControls):
    """Order keys: the invoice id or our reference; request kinds ``invoice`` (the link),
    ``page``; e.g. ``scenario(match={"amount": 5000}, result="twice")``."""

    # -- the cabinet ----------------------------------------------------------------------------

    def new_shop(self, **urls: str | None) -> dict[str, str]:
        """A fresh shop of its own (so no test shares a cabinet), its cabinet set from
        ``result_url``, ``success_url``, ``fail_url``: its credentials, in the shape malipo
        stores them (``store_gateway_credentials(..., "telcell", ...)``)."""
        credentials = {
            "shop_id": f"shop-{secrets.token_hex(5)}@telcell.test",
            "shop_key": f"telcell-key-{secrets.token_hex(16)}",
            "language": "en",
        }
        self.cabinet(credentials["shop_id"], shop_key=credentials["shop_key"], **urls)
        return credentials

    def cabinet(
        self, shop_id: str, *, shop_key: str | None = None, **urls: str | None
    ) -> dict[str, Any]:
        """What Telcell sets in the shop's cabinet: ``result_url``, ``success_url``,
        ``fail_url`` (only those given change; None removes one)."""
        document: dict[str, Any] = {"issuer": shop_id, **urls}
        if shop_key is not None:
            document["shop_key"] = shop_key
        result: dict[str, Any] = self._call("POST", "/cabinet", json=document)
        return result

    # -- the customer ---------------------------------------------------------------------------

    def open_page(self, url: str) -> tuple[str, requests.Response]:
        """What the browser does with the ``redirect`` next action: GET its URL (following
        Telcell's redirect to the page). Returns Telcell's invoice id and the page."""
        page = self.http.get(url, timeout=10)
        page.raise_for_status()
        return urlsplit(page.url).path.rsplit("/", 1)[-1], page

    # -- steering and records -------------------------------------------------------------------

    def resend(self, key: str) -> None:
        """The invoice's result again (same payment_id)."""
        self._call("POST", f"/orders/{key}/resend")

    def deliveries(self, order: str | None = None) -> list[dict[str, Any]]:
        """Results posted to RESULT_URLs, with their answers."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/deliveries", params={"order": order} if order else None
        )["deliveries"]
        return result
