"""The Idram simulator's own ``/_sim`` controls: the cabinet, orders, what health reports.

The records, reset and health resources are ``sandbox/kit.py``'s.

Bad input is answered 400 with falcon's JSON error document, unknown ids 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import falcon

from sandbox.idram.state import BUILTIN_ACCOUNT, IdramState
from sandbox.web import json_object

if TYPE_CHECKING:
    from sandbox.idram.app import IdramCheckout
    from sandbox.idram.results import ResultSender

_URLS = ("result_url", "success_url", "fail_url")


def bad(reason: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="refused", description=reason)


class CabinetResource:
    """``POST /_sim/cabinet {EDP_REC_ACCOUNT, secret_key?, result_url?, success_url?, fail_url?}``.

    What Idram's staff type into a merchant's cabinet: a new account needs its
    ``secret_key``; an existing one changes only the fields given (a URL may be
    null to remove it). ``GET`` lists the accounts, secrets redacted.
    """

    def __init__(self, state: IdramState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"accounts": [a.to_json() for a in self._state.accounts()]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = cabinet_changes(json_object(req))
        if self._state.account(changes["rec_account"]) is None and "secret_key" not in changes:
            raise bad("a new account needs its secret_key")
        account, created = self._state.put_account(changes)
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        resp.media = account.to_json()


def cabinet_changes(document: dict[str, object]) -> dict[str, Any]:
    unknown = sorted(set(document) - {"EDP_REC_ACCOUNT", "secret_key", *_URLS})
    if unknown:
        raise bad(f"unknown cabinet fields: {', '.join(unknown)}")
    # Without an account, the cabinet is the built-in one's (what `make run` fills in).
    rec_account = document.get("EDP_REC_ACCOUNT", BUILTIN_ACCOUNT.rec_account)
    if isinstance(rec_account, int) and not isinstance(rec_account, bool):
        rec_account = str(rec_account)
    if not isinstance(rec_account, str) or not rec_account.strip():
        raise bad("EDP_REC_ACCOUNT is required")
    changes: dict[str, Any] = {"rec_account": rec_account.strip()}
    if "secret_key" in document:
        secret = document["secret_key"]
        if not isinstance(secret, str) or not secret:
            raise bad("secret_key must be a non-empty string")
        changes["secret_key"] = secret
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
    """``GET /_sim/orders``, ``GET /_sim/orders/{id or bill}``, ``POST …/{id}/resend``."""

    def __init__(self, state: IdramState, checkout: IdramCheckout) -> None:
        self._state = state
        self._checkout = checkout

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"orders": self._state.orders()}

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        order = self._state.order(order_id)
        if order is None:
            raise falcon.HTTPNotFound(description="no such order")
        resp.media = self._state.shown(order)

    def on_post_resend(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        """The confirmation again (same EDP_TRANS_ID), as an Idram operator could send it."""
        order = self._state.order(order_id)
        if order is None:
            raise falcon.HTTPNotFound(description="no such order")
        delivery = self._checkout.resend(order)
        if delivery is None:
            raise falcon.HTTPConflict(title="not paid", description="the order has no payment")
        resp.status = falcon.HTTP_202
        resp.media = {"scheduled": True, "order_id": order.order_id, "url": delivery.url}


def health(state: IdramState, sender: ResultSender) -> dict[str, object]:
    """What ``GET /_sim/health`` reports besides ``"status": "ok"``."""
    return {
        "gateway": "idram",
        "accounts": len(state.accounts()),
        "orders": len(state.orders()),
        "pending_results": sender.pending(),
    }
