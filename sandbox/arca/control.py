"""The ArCa simulator's ``/_sim`` controls (besides the page's ``decide``).

Bad input is answered 400 with falcon's JSON error document, unknown orders 404.
"""

from __future__ import annotations

from typing import Final

import falcon

from sandbox.arca.state import ORDER_STATUSES, ArcaState
from sandbox.hosted import HostedOrder
from sandbox.web import json_object

KINDS: Final = ("register", "status", "refund", "page", "other")


def _found(state: ArcaState, key: str) -> HostedOrder:
    order = state.order(key)
    if order is None:
        raise falcon.HTTPNotFound(description="no such order")
    return order


def _shown(state: ArcaState, order: HostedOrder) -> dict[str, object]:
    order_status, action_code = state.visible(order)
    return {
        **order.to_json(),
        "visible_order_status": order_status,
        "visible_action_code": action_code,
    }


class OrdersResource:
    """``GET /_sim/orders``, ``GET /_sim/orders/{key}`` (orderId or orderNumber) and
    ``POST /_sim/orders/{key}/status {"order_status": 0-6, "action_code"?}`` (the
    engine's side changes: a reversal, a refund made at the bank)."""

    def __init__(self, state: ArcaState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"orders": [_shown(self._state, o) for o in self._state.orders()]}

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        resp.media = _shown(self._state, _found(self._state, order_id))

    def on_post_status(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        order = _found(self._state, order_id)
        body = json_object(req)
        status, code = body.get("order_status"), body.get("action_code", 0)
        if isinstance(status, bool) or not isinstance(status, int) or status not in ORDER_STATUSES:
            raise falcon.HTTPBadRequest(description="order_status must be 0-6")
        if isinstance(code, bool) or not isinstance(code, int):
            raise falcon.HTTPBadRequest(description="action_code must be an integer")
        self._state.set_status(order, status, code)
        resp.media = _shown(self._state, order)


class AccountsResource:
    """``GET /_sim/accounts``; ``POST {"username"?, "password"?}`` adds a merchant
    (missing values generated) and answers it, password included."""

    def __init__(self, state: ArcaState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"accounts": [m.to_json() for m in self._state.merchants()]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        username, password = body.get("username"), body.get("password")
        for name, value, limit in (("username", username, 100), ("password", password, 30)):
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
                raise falcon.HTTPBadRequest(description=f"{name} must be 1-{limit} characters")
        try:
            merchant = self._state.add_merchant(
                username if isinstance(username, str) else None,
                password if isinstance(password, str) else None,
            )
        except ValueError as exc:
            raise falcon.HTTPConflict(description=str(exc)) from None
        resp.status = 201
        resp.media = merchant.to_json()


def health(state: ArcaState) -> dict[str, object]:
    """What ``GET /_sim/health`` reports besides ``"status": "ok"``."""
    return {"gateway": "arca", "orders": len(state.orders())}
