"""A client for the Idram simulator's controls (``/idram/_sim``), like ``intouch_sim.py``."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from tests.support.sim_controls import SimControls


class IdramSimulator(SimControls):
    """Order keys: Idram's id or the bill number; request kinds ``payment`` (the form),
    ``page``; e.g. ``scenario(match={"amount": 5000}, result="twice")``."""

    # -- the cabinet ----------------------------------------------------------------------------

    def new_account(self, **urls: str | None) -> dict[str, str]:
        """A fresh account of its own (so no test shares a cabinet), its cabinet set from
        ``result_url``, ``success_url``, ``fail_url``: its credentials, in the shape malipo
        stores them (``store_gateway_credentials(..., "idram", ...)``)."""
        credentials = {
            "rec_account": f"3{secrets.randbelow(10**8):08d}",
            "secret_key": f"idram-secret-{secrets.token_hex(12)}",
            "language": "EN",
        }
        self.cabinet(credentials["rec_account"], secret_key=credentials["secret_key"], **urls)
        return credentials

    def cabinet(
        self, rec_account: str, *, secret_key: str | None = None, **urls: str | None
    ) -> dict[str, Any]:
        """What Idram's staff type into the account's cabinet: ``result_url``,
        ``success_url``, ``fail_url`` (only those given change; None removes one)."""
        document: dict[str, Any] = {"EDP_REC_ACCOUNT": rec_account, **urls}
        if secret_key is not None:
            document["secret_key"] = secret_key
        result: dict[str, Any] = self._call("POST", "/cabinet", json=document)
        return result

    # -- the customer ---------------------------------------------------------------------------

    def open_page(self, url: str, fields: Mapping[str, str]) -> tuple[str, requests.Response]:
        """What the browser does with the ``form_post`` next action: post its fields to its
        URL (following Idram's redirect to the page). Returns Idram's order id and the page."""
        page = self.http.post(url, data=dict(fields), timeout=10)
        page.raise_for_status()
        return urlsplit(page.url).path.rsplit("/", 1)[-1], page

    # -- steering and records -------------------------------------------------------------------

    def resend(self, key: str) -> None:
        """The order's confirmation again (same EDP_TRANS_ID)."""
        self._call("POST", f"/orders/{key}/resend")

    def deliveries(self, order: str | None = None) -> list[dict[str, Any]]:
        """Calls to RESULT_URLs (``kind`` precheck or confirmation), with their answers."""
        result: list[dict[str, Any]] = self._call(
            "GET", "/deliveries", params={"order": order} if order else None
        )["deliveries"]
        return result
