"""The FastShift simulator's own ``/_sim`` controls: orders, accounts, what health reports.

The records, reset and health resources are ``sandbox/kit.py``'s.

Bad input is answered 400 with falcon's JSON error document (``title``,
``description``), unknown ids 404. Deciding an order is the shared page's
``POST /_sim/orders/{order_id}/decide`` (``sandbox/hosted.py``).
"""

from __future__ import annotations

import falcon

from sandbox.fastshift.checkout import FastShiftCheckout
from sandbox.fastshift.state import Order, SimulatorState
from sandbox.fastshift.webhooks import WebhookDispatcher
from sandbox.web import json_object


def bad(reason: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="refused", description=reason)


class OrdersResource:
    """``GET /_sim/orders[/{order_id}]``; ``POST …/resend`` and ``POST …/expire``.

    ``order_id`` is FastShift's ``order_guid`` or the merchant's ``order_number``.
    """

    def __init__(self, state: SimulatorState, checkout: FastShiftCheckout) -> None:
        self._state = state
        self._checkout = checkout

    def _found(self, order_id: str) -> Order:
        order = self._state.find(order_id)
        if order is None:
            raise falcon.HTTPNotFound(description="no such order")
        self._checkout.expire_if_due(order)
        return order

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self._state.now()
        resp.media = {"orders": [o.to_json(now) for o in self._state.orders()]}

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        resp.media = self._found(order_id).to_json(self._state.now())

    def on_post_resend(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        """Send the order's webhook again, now, with its real (final) status."""
        order = self._found(order_id)
        if order.final_status == "pending":
            raise falcon.HTTPConflict(title="not final", description="the order is still pending")
        if order.webhook_url is None:
            raise falcon.HTTPConflict(title="no webhook", description="registered without one")
        self._checkout.dispatcher.send_now(order, order.final_status)
        resp.status = falcon.HTTP_202
        resp.media = {"scheduled": True, "order_number": order.order_number}

    def on_post_expire(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        """Expire an undecided order now (its webhooks follow its plan)."""
        order = self._found(order_id)
        if not self._checkout.expire_if_due(order, force=True):
            raise falcon.HTTPConflict(title="not pending", description="the order is decided")
        resp.media = order.to_json(self._state.now())


class AccountsResource:
    """``GET`` lists accounts (tokens shortened); ``POST {"token"?, "name"?}`` adds one."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"accounts": [a.to_json() for a in self._state.accounts()]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        document = json_object(req) if req.context.raw_body else {}
        token, name = document.get("token"), document.get("name")
        if token is not None and (
            not isinstance(token, str)
            or not token
            or len(token) > 2000
            or any(c.isspace() or ord(c) < 32 for c in token)
        ):
            raise bad("token must be text without whitespace")
        if name is not None and not isinstance(name, str):
            raise bad("name must be text")
        try:
            account = self._state.add_account(token, name)
        except ValueError as exc:
            raise falcon.HTTPConflict(title="duplicate", description=str(exc)) from None
        resp.status = falcon.HTTP_201
        resp.media = account.to_json(show_token=True)


def health(state: SimulatorState, dispatcher: WebhookDispatcher) -> dict[str, object]:
    """What ``GET /_sim/health`` reports besides ``"status": "ok"``."""
    return {
        "accounts": len(state.accounts()),
        "orders": len(state.orders()),
        "pending_deliveries": dispatcher.pending(),
        "delivery_thread_alive": dispatcher.is_alive(),
    }
