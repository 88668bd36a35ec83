"""The Ameria simulator's ``/_sim`` controls (besides the page's ``decide``).

Bad input is answered 400 with falcon's JSON error document, unknown orders 404.
"""

from __future__ import annotations

from typing import Final

import falcon

from sandbox.ameria.state import APPROVED_CODE, PAYMENT_STATES, AmeriaState
from sandbox.hosted import HostedOrder
from sandbox.web import json_object

KINDS: Final = ("init", "details", "refund", "page", "other")


def _found(state: AmeriaState, key: str) -> HostedOrder:
    order = state.order(key)
    if order is None:
        raise falcon.HTTPNotFound(description="no such order")
    return order


def _shown(state: AmeriaState, order: HostedOrder) -> dict[str, object]:
    order_status, response_code = state.details(order)
    return {**order.to_json(), "visible_order_status": order_status, "visible_code": response_code}


class OrdersResource:
    """``GET /_sim/orders``, ``GET /_sim/orders/{key}`` (PaymentID, Opaque or OrderID) and
    ``POST /_sim/orders/{key}/status {"order_status": 0-6, "response_code"?}`` (the bank's
    side changes: a void, a refund made at the bank)."""

    def __init__(self, state: AmeriaState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"orders": [_shown(self._state, o) for o in self._state.orders()]}

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        resp.media = _shown(self._state, _found(self._state, order_id))

    def on_post_status(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        order = _found(self._state, order_id)
        body = json_object(req)
        status = body.get("order_status")
        if isinstance(status, bool) or not isinstance(status, int) or status not in PAYMENT_STATES:
            raise falcon.HTTPBadRequest(description="order_status must be 0-6 (table 2)")
        code = body.get("response_code", APPROVED_CODE)
        if not isinstance(code, str) or not code.strip():
            raise falcon.HTTPBadRequest(description="response_code must be text")
        self._state.set_status(order, status, code.strip())
        resp.media = _shown(self._state, order)


class AccountsResource:
    """``GET /_sim/accounts``; ``POST {"client_id"?, "username"?, "password"?}`` adds a
    merchant (missing values generated) and answers it, password included."""

    def __init__(self, state: AmeriaState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"accounts": [a.to_json() for a in self._state.accounts()]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        values: dict[str, str | None] = {}
        for name in ("client_id", "username", "password"):
            value = body.get(name)
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 100):
                raise falcon.HTTPBadRequest(description=f"{name} must be 1-100 characters")
            values[name] = value
        try:
            account = self._state.add_account(**values)
        except ValueError as exc:
            raise falcon.HTTPConflict(description=str(exc)) from None
        resp.status = 201
        resp.media = account.to_json()


def health(state: AmeriaState) -> dict[str, object]:
    """What ``GET /_sim/health`` reports besides ``"status": "ok"``."""
    return {"gateway": "ameria", "orders": len(state.orders())}
