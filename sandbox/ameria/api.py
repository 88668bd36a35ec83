"""Ameria's vPOS API under ``/VPOS``: InitPayment, GetPaymentDetails and the payment page.

Answers follow the vPOS 3.1 document's shapes. Refusals are HTTP 200 with a
``ResponseCode`` from its table 1 (InitPayment: an integer; GetPaymentDetails: a
string); which code InitPayment uses for each refusal is not documented, and the
simulator's choices are: 20 wrong ClientID/login, 4 a required field missing,
50 a bad amount, 3 a currency other than 051, 510 a bad BackURL or OrderID, 8204
a registered OrderID. GetPaymentDetails: "20" wrong login, "06" unknown PaymentID.
RefundPayment: "00" done, "20" wrong login, "06" unknown PaymentID, "0-100" not
deposited, "50" more than is left, a scenario's ``refund_decline`` code.
A body that is not a JSON object is HTTP 400, as ASP.NET answers.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import falcon

from sandbox.ameria.scenarios import ScenarioBook, amount_of
from sandbox.ameria.state import (
    APPROVED_CODE,
    Account,
    AmeriaState,
    DuplicateOrder,
    details_document,
)
from sandbox.hosted import HostedOrder, HostedPages

MAX_TEXT = 255


def same(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def json_body(req: falcon.Request, resp: falcon.Response) -> dict[str, Any] | None:
    """The JSON object body; None (and HTTP 400 answered) when there is none."""
    try:
        document = json.loads(req.context.raw_body or b"null")
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        resp.status = 400
        resp.media = {"Message": "The request is invalid."}
        return None
    return document


def init_refusal(resp: falcon.Response, code: int, message: str) -> None:
    resp.media = {"PaymentID": None, "ResponseCode": code, "ResponseMessage": message}


class InitPaymentResource:
    """``POST /VPOS/api/VPOS/InitPayment``: register an order, answer its PaymentID."""

    def __init__(self, state: AmeriaState, scenarios: ScenarioBook) -> None:
        self._state = state
        self._scenarios = scenarios

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_body(req, resp)
        if body is None:
            return
        account = self._state.account(body.get("ClientID"))
        if account is None or not (
            same(body.get("Username"), account.username)
            and same(body.get("Password"), account.password)
        ):
            init_refusal(resp, 20, "Incorrect Username and Password")
            return
        amount = amount_of(body.get("Amount"))
        decision = self._scenarios.decide(amount)
        if decision.init_error is not None:
            resp.status = decision.init_error
            resp.media = {"Message": "An error has occurred."}
            return
        problem = _problem(body, amount)
        if problem is not None:
            init_refusal(resp, *problem)
            return
        assert amount is not None  # _problem refused it otherwise
        try:
            order = self._state.register(
                account,
                order_number=_order_number(body["OrderID"]),
                amount=amount,
                description=str(body["Description"]).strip()[:MAX_TEXT],
                back_url=body.get("BackURL") or None,
                opaque=str(body["Opaque"])[:MAX_TEXT] if body.get("Opaque") else None,
                scenario=decision.scenario,
            )
        except DuplicateOrder:
            init_refusal(resp, 8204, "Decline. Duplicate order")
            return
        resp.media = {"PaymentID": order.order_id, "ResponseCode": 1, "ResponseMessage": "OK"}


def _order_number(value: object) -> int:
    return int(value) if isinstance(value, int | str) else 0


def _problem(body: dict[str, Any], amount: Decimal | None) -> tuple[int, str] | None:
    """Why InitPayment refuses this body (its ResponseCode and message), or None."""
    for name in ("OrderID", "Amount", "Description"):
        if body.get(name) in (None, ""):
            return 4, f"Required parameter missed: {name}"
    order_id = body["OrderID"]
    if isinstance(order_id, str) and order_id.strip().isdigit():
        order_id = int(order_id)
    if isinstance(order_id, bool) or not isinstance(order_id, int) or not 0 < order_id < 2**31:
        return 510, "Incorrect parameters: OrderID must be a positive integer"
    body["OrderID"] = order_id
    if amount is None or amount <= 0 or (amount * 100) != (amount * 100).to_integral_value():
        return 50, "Payment sum error"
    if body.get("Currency") not in (None, "", "051"):
        return 3, "Incorrect Currency"
    back_url = body.get("BackURL")
    if back_url not in (None, "") and (
        not isinstance(back_url, str) or not back_url.startswith(("http://", "https://"))
    ):
        return 510, "Incorrect parameters: BackURL"
    if not isinstance(body["Description"], str):
        return 510, "Incorrect parameters: Description"
    return None


def _own_order(
    state: AmeriaState,
    req: falcon.Request,
    resp: falcon.Response,
    refusal: Callable[[str, str], dict[str, str]],
) -> tuple[dict[str, Any], Account, HostedOrder] | None:
    """A PaymentID call's body, its login's account and that account's order; None once
    refused in ``refusal``'s shape ("20" a wrong login, "06" an unknown or another's order)."""
    body = json_body(req, resp)
    if body is None:
        return None
    account = state.account_of_login(body.get("Username"))
    if account is None or not same(body.get("Password"), account.password):
        resp.media = refusal("20", "Incorrect Username and Password")
        return None
    payment_id = body.get("PaymentID")
    order = state.order(payment_id) if isinstance(payment_id, str) else None
    if (
        order is None
        or order.order_id != str(payment_id).upper()
        or order.extra["client_id"] != account.client_id
    ):
        resp.media = refusal("06", "Unregistered OrderId")
        return None
    return body, account, order


def _details_refusal(code: str, message: str) -> dict[str, str]:
    return {"ResponseCode": code, "ResponseMessage": message}


class PaymentDetailsResource:
    """``POST /VPOS/api/VPOS/GetPaymentDetails``: where an order stands."""

    def __init__(self, state: AmeriaState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        found = _own_order(self._state, req, resp, _details_refusal)
        if found is None:
            return
        _, account, order = found
        order_status, response_code = self._state.details(order)
        resp.media = details_document(order, account, order_status, response_code)


class RefundPaymentResource:
    """``POST /VPOS/api/VPOS/RefundPayment`` ``{PaymentID, Username, Password, Amount}``:
    give back part or all of a deposited order, synchronously (``"00"`` when done)."""

    def __init__(self, state: AmeriaState, sleep: Callable[[float], None] = time.sleep) -> None:
        self._state = state
        self._sleep = sleep

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        found = _own_order(self._state, req, resp, _refund_answer)
        if found is None:
            return
        body, _, order = found
        amount = amount_of(body.get("Amount"))
        if amount is None:
            resp.media = _refund_answer("4", "Required parameter missed: Amount")
            return
        code, message = self._state.refund(order, amount)
        if code == APPROVED_CODE:
            # The money is back already when a slow answer reaches the client.
            self._sleep(float(order.extra["refund_delay_s"]))
        resp.media = _refund_answer(code, message, str(order.extra["opaque"]))


def _refund_answer(code: str, message: str, opaque: str = "") -> dict[str, str]:
    return {"ResponseCode": code, "ResponseMessage": message, "Opaque": opaque}


class PayPageResource:
    """``GET /VPOS/Payments/Pay?id=<PaymentID>&lang=…``: the customer's payment page."""

    def __init__(self, state: AmeriaState, pages: HostedPages) -> None:
        self._state = state
        self._pages = pages

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        payment_id = req.get_param("id") or ""
        order = self._state.order(payment_id)
        if order is None or order.order_id != payment_id.upper():
            raise falcon.HTTPNotFound(description="no such payment")
        self._pages.show(req, resp, order)
