"""ArCa's (BPC's) REST API under ``/payment/rest``, and the payment page.

``register.do`` and ``getOrderStatusExtended.do`` take form-encoded parameters
(the query string is read too, as the engine does) and answer JSON, HTTP 200
even for refusals: ``{"errorCode": "<n>", "errorMessage": …}``. register.do: 5
"Access denied" (wrong login), 4 a required parameter missing, 5 a wrong value,
3 a currency other than 051, 1 an orderNumber registered already. The status
call: 5 access denied, 6 unknown order ("Order not found"). refund.do: 0 done, 5
access denied or a bad amount, 6 unknown order, 7 not deposited or more than is
left, a scenario's ``refund_decline``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qsl

import falcon

from sandbox.arca.scenarios import ScenarioBook
from sandbox.arca.state import PAGE_PATH, ArcaState, DuplicateOrder, status_document
from sandbox.hosted import HostedPages

MAX_ORDER_NUMBER: Final = 32
MAX_URL: Final = 2000
MAX_TEXT: Final = 512


def same(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def parameters(req: falcon.Request) -> dict[str, str]:
    """The query string's and the form body's parameters (the body's win)."""
    found = {k: str(v) for k, v in req.params.items() if isinstance(v, str)}
    try:
        text = (req.context.raw_body or b"").decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    found.update(parse_qsl(text, keep_blank_values=True))
    return found


def refuse(resp: falcon.Response, code: int, message: str) -> None:
    resp.media = {"errorCode": str(code), "errorMessage": message}


class RegisterResource:
    """``POST /payment/rest/register.do``: register an order, answer its orderId and formUrl."""

    def __init__(self, state: ArcaState, scenarios: ScenarioBook) -> None:
        self._state = state
        self._scenarios = scenarios

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = parameters(req)
        merchant = self._state.merchant(params.get("userName"))
        if merchant is None or not same(params.get("password"), merchant.password):
            refuse(resp, 5, "Access denied")
            return
        amount_text = params.get("amount", "").strip()
        amount = int(amount_text) if amount_text.isdigit() and len(amount_text) <= 15 else None
        decision = self._scenarios.decide(amount)
        if decision.init_error is not None:
            resp.status = decision.init_error
            resp.content_type = falcon.MEDIA_HTML
            resp.text = "<html><body>Internal error</body></html>"
            return
        problem = _problem(params, amount)
        if problem is not None:
            refuse(resp, *problem)
            return
        assert amount is not None  # _problem refused it otherwise
        try:
            order = self._state.register(
                merchant,
                order_number=params["orderNumber"],
                amount_minor=amount,
                description=params.get("description", "")[:MAX_TEXT],
                return_url=params["returnUrl"],
                fail_url=params.get("failUrl") or None,
                scenario=decision.scenario,
            )
        except DuplicateOrder:
            refuse(resp, 1, "Order with this number was already processed")
            return
        resp.media = {
            "orderId": order.order_id,
            "formUrl": f"{req.prefix}{PAGE_PATH}?mdOrder={order.order_id}",
        }


def _problem(params: dict[str, str], amount: int | None) -> tuple[int, str] | None:
    """Why register.do refuses these parameters (its errorCode and message), or None."""
    for name in ("orderNumber", "amount", "returnUrl"):
        if not params.get(name, "").strip():
            return 4, f"[{name}] is empty"
    if len(params["orderNumber"]) > MAX_ORDER_NUMBER:
        return 5, "[orderNumber] is too long"
    if amount is None or amount < 1:
        return 5, "[amount] is invalid"
    if params.get("currency", "051") not in ("051", ""):
        return 3, "Unknown currency"
    for name in ("returnUrl", "failUrl"):
        url = params.get(name)
        if url and (len(url) > MAX_URL or not url.startswith(("http://", "https://"))):
            return 5, f"[{name}] is invalid"
    return None


class StatusResource:
    """``POST /payment/rest/getOrderStatusExtended.do``: where an order stands."""

    def __init__(self, state: ArcaState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = parameters(req)
        merchant = self._state.merchant(params.get("userName"))
        if merchant is None or not same(params.get("password"), merchant.password):
            refuse(resp, 5, "Access denied")
            return
        key = params.get("orderId") or params.get("orderNumber") or ""
        if not key:
            refuse(resp, 1, "[orderId] or [orderNumber] is expected")
            return
        order = self._state.order(key)
        if order is None or order.extra["username"] != merchant.username:
            refuse(resp, 6, "Order not found")
            return
        order_status, action_code = self._state.visible(order)
        resp.media = status_document(order, merchant, order_status, action_code)

    on_get = on_post


class RefundResource:
    """``POST /payment/rest/refund.do`` (``userName, password, orderId, amount`` in luma):
    give back part or all of a deposited order, synchronously (errorCode 0 when done)."""

    def __init__(self, state: ArcaState, sleep: Callable[[float], None] = time.sleep) -> None:
        self._state = state
        self._sleep = sleep

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = parameters(req)
        merchant = self._state.merchant(params.get("userName"))
        if merchant is None or not same(params.get("password"), merchant.password):
            refuse(resp, 5, "Access denied")
            return
        order_id = params.get("orderId", "")
        order = self._state.order(order_id) if order_id else None
        if (
            order is None
            or order.order_id != order_id.lower()
            or (order.extra["username"] != merchant.username)
        ):
            refuse(resp, 6, "Order not found")
            return
        amount_text = params.get("amount", "").strip()
        if not amount_text.isdigit() or len(amount_text) > 15:
            refuse(resp, 5, "[amount] is invalid")
            return
        code, message = self._state.refund(order, int(amount_text))
        if code:
            refuse(resp, code, message)
            return
        # The money is back already when a slow answer reaches the client.
        self._sleep(float(order.extra["refund_delay_s"]))
        resp.media = {"errorCode": "0", "errorMessage": message}


class PayPageResource:
    """``GET /payment/merchants/ipay/payment.html?mdOrder=<orderId>``: the customer's page."""

    def __init__(self, state: ArcaState, pages: HostedPages) -> None:
        self._state = state
        self._pages = pages

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        order_id: Any = req.get_param("mdOrder") or ""
        order = self._state.order(order_id)
        if order is None or order.order_id != order_id.lower():
            raise falcon.HTTPNotFound(description="no such order")
        self._pages.show(req, resp, order)
