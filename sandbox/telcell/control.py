"""The Telcell simulator's own ``/_sim`` controls: the cabinet, invoices, what health reports.

The records, reset and health resources are ``sandbox/kit.py``'s.

Bad input is answered 400 with falcon's JSON error document, unknown ids 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import falcon

from sandbox.telcell.state import BUILTIN_SHOP, TelcellState
from sandbox.web import json_object

if TYPE_CHECKING:
    from sandbox.telcell.app import TelcellCheckout
    from sandbox.telcell.results import ResultSender

_URLS = ("result_url", "success_url", "fail_url")


def bad(reason: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="refused", description=reason)


class CabinetResource:
    """``POST /_sim/cabinet {issuer, shop_key?, result_url?, success_url?, fail_url?}``.

    What Telcell sets in a shop's cabinet: a new shop needs its ``shop_key``; an
    existing one changes only the fields given (a URL may be null to remove it).
    ``GET`` lists the shops, keys redacted.
    """

    def __init__(self, state: TelcellState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"shops": [s.to_json() for s in self._state.shops()]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = cabinet_changes(json_object(req))
        if self._state.shop(changes["issuer"]) is None and "shop_key" not in changes:
            raise bad("a new shop needs its shop_key")
        shop, created = self._state.put_shop(changes)
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        resp.media = shop.to_json()


def cabinet_changes(document: dict[str, object]) -> dict[str, Any]:
    unknown = sorted(set(document) - {"issuer", "shop_key", *_URLS})
    if unknown:
        raise bad(f"unknown cabinet fields: {', '.join(unknown)}")
    # Without an account, the cabinet is the built-in one's (what `make run` fills in).
    issuer = document.get("issuer", BUILTIN_SHOP.issuer)
    if not isinstance(issuer, str) or not issuer.strip():
        raise bad("issuer is required")
    changes: dict[str, Any] = {"issuer": issuer.strip()}
    if "shop_key" in document:
        key = document["shop_key"]
        if not isinstance(key, str) or not key:
            raise bad("shop_key must be a non-empty string")
        changes["shop_key"] = key
    for name in _URLS:
        if name in document:
            url = document[name]
            if url is not None and (
                not isinstance(url, str) or not url.startswith(("http://", "https://"))
            ):
                raise bad(f"{name} must be an http(s) URL or null")
            changes[name] = url
    return changes


class OrdersResource:
    """``GET /_sim/orders``, ``GET /_sim/orders/{invoice or issuer_id}``, ``POST …/resend``."""

    def __init__(self, state: TelcellState, checkout: TelcellCheckout) -> None:
        self._state = state
        self._checkout = checkout

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"orders": self._state.orders()}

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        order = self._state.order(order_id)
        if order is None:
            raise falcon.HTTPNotFound(description="no such invoice")
        resp.media = self._state.shown(order)

    def on_post_resend(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        """The result again (same payment_id), as a Telcell operator could send it."""
        order = self._state.order(order_id)
        if order is None:
            raise falcon.HTTPNotFound(description="no such invoice")
        delivery = self._checkout.resend(order)
        if delivery is None:
            raise falcon.HTTPConflict(title="open", description="the invoice is still open")
        resp.status = falcon.HTTP_202
        resp.media = {"scheduled": True, "order_id": order.order_id, "url": delivery.url}


def health(state: TelcellState, sender: ResultSender) -> dict[str, object]:
    """What ``GET /_sim/health`` reports besides ``"status": "ok"``."""
    return {
        "gateway": "telcell",
        "shops": len(state.shops()),
        "orders": len(state.orders()),
        "pending_results": sender.pending(),
    }
