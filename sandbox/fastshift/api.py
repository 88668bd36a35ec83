"""FastShift's merchant API under ``/api/en/vpos`` and its customer page under ``/pay``.

* ``POST /api/en/vpos/order/register`` (Bearer): validates like the document says
  (422 ``INVALID_DATA`` with ``errors`` by field), keeps the order and answers
  ``{"status": "OK", "data": {"order": {…}, "redirect_url": "<sim>/pay/<order_guid>"}}``;
* ``GET /api/en/vpos/order/status/{order_number}`` (Bearer): ``{"status": "OK",
  "data": {"order": {…}, "fastshift_id"}}``, or 404 ``NOT_FOUND``;
* ``GET /pay/{order_guid}``: the shared hosted page (Pay / Decline).

A missing or unknown token is 401 ``UNAUTHORIZED``. Unverified wording: the
messages, and a second register of one order number being 400 ``ERROR``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Final
from urllib.parse import urlsplit

import falcon

from sandbox.config import SimulatorConfig
from sandbox.fastshift.checkout import FastShiftCheckout
from sandbox.fastshift.scenarios import ScenarioBook
from sandbox.fastshift.state import Account, DuplicateOrder, SimulatorState
from sandbox.hosted import HostedPages

MAX_AMOUNT: Final = 2**32 - 1
MAX_TEXT: Final = 1000
ERROR_WORDS: Final = {
    400: "ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    422: "INVALID_DATA",
    500: "APP_ERROR",
}


def answer(resp: falcon.Response, status: int, document: dict[str, Any]) -> None:
    resp.status = status
    resp.media = document


def refuse(resp: falcon.Response, status: int, message: str) -> None:
    answer(resp, status, {"status": ERROR_WORDS.get(status, "ERROR"), "message": message})


class ApiResource:
    """What both API resources share: the account behind the Bearer token."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def _account(self, req: falcon.Request, resp: falcon.Response) -> Account | None:
        scheme, _, token = (req.get_header("Authorization") or "").strip().partition(" ")
        account = (
            self._state.account_for_token(token.strip())
            if scheme.lower() == "bearer" and token.strip()
            else None
        )
        if account is None:
            refuse(resp, 401, "Unauthenticated.")
        return account


class RegisterResource(ApiResource):
    """``POST /api/en/vpos/order/register``."""

    def __init__(
        self,
        state: SimulatorState,
        scenarios: ScenarioBook,
        checkout: FastShiftCheckout,
        config: SimulatorConfig,
        page_base_url: str | None,
    ) -> None:
        super().__init__(state)
        self._scenarios = scenarios
        self._checkout = checkout
        self._config = config
        self._page_base_url = page_base_url

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        account = self._account(req, resp)
        if account is None:
            return
        body = _json_object(req.context.raw_body)
        if body is None:
            refuse(resp, 400, "The body must be a JSON object.")
            return
        problems = register_problems(body)
        if problems:
            answer(resp, 422, {"status": "INVALID_DATA", "errors": problems})
            return
        order_number = str(body["order_number"])
        decision = self._scenarios.decide(order_number, int(body["amount"]))
        if decision.register_error is not None:
            refuse(resp, decision.register_error, "Injected error.")
            return
        try:
            order = self._state.register(
                account,
                order_number=order_number,
                amount=int(body["amount"]),
                description=str(body["description"]),
                callback_url=str(body["callback_url"]),
                webhook_url=_optional_text(body.get("webhook_url")),
                external_order_id=_optional_text(body.get("external_order_id")),
                plan=decision.plan,
            )
        except DuplicateOrder:
            refuse(resp, 400, "An order with this order_number already exists.")
            return
        self._checkout.registered(order)
        base = (self._page_base_url or req.prefix).rstrip("/")
        answer(
            resp,
            200,
            {
                "status": "OK",
                "data": {
                    "order": order.to_fastshift(self._state.now()),
                    "redirect_url": f"{base}/pay/{order.order_guid}",
                },
            },
        )
        if decision.plan.register_delay_s:
            # The order is kept: a client that gives up waiting does not know it exists.
            time.sleep(decision.plan.register_delay_s)


def register_problems(body: dict[str, Any]) -> dict[str, str]:
    """``INVALID_DATA``'s ``errors``: what is wrong with each field, by name."""
    problems: dict[str, str] = {}
    order_number = body.get("order_number")
    if not isinstance(order_number, str) or not _is_guid(order_number):
        problems["order_number"] = "The order number must be a valid GUID."
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_AMOUNT:
        problems["amount"] = "The amount must be an unsigned integer of at least 1."
    description = body.get("description")
    if not isinstance(description, str) or not description.strip() or len(description) > MAX_TEXT:
        problems["description"] = "The description field is required."
    if not _is_http_url(body.get("callback_url")):
        problems["callback_url"] = "The callback url must be a valid URL."
    webhook_url = body.get("webhook_url")
    if webhook_url not in (None, "") and not _is_http_url(webhook_url):
        problems["webhook_url"] = "The webhook url must be a valid URL."
    external = body.get("external_order_id")
    if external is not None and (not isinstance(external, str | int) or len(str(external)) > 255):
        problems["external_order_id"] = "The external order id must be a string."
    return problems


class StatusResource(ApiResource):
    """``GET /api/en/vpos/order/status/{order_number}``."""

    def __init__(self, state: SimulatorState, checkout: FastShiftCheckout) -> None:
        super().__init__(state)
        self._checkout = checkout

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_number: str) -> None:
        account = self._account(req, resp)
        if account is None:
            return
        order = self._state.find_for_account(account.id, order_number)
        if order is None:
            refuse(resp, 404, "Order not found.")
            return
        self._checkout.expire_if_due(order)
        now = self._state.now()
        shown = order.to_fastshift(now)
        answer(
            resp,
            200,
            {
                "status": "OK",
                "data": {
                    "order": shown,
                    "fastshift_id": order.fastshift_id if shown["status"] == "completed" else None,
                },
            },
        )


class PayPageResource:
    """``GET /pay/{order_id}``: FastShift's page for the order (the shared hosted page)."""

    def __init__(self, pages: HostedPages) -> None:
        self._pages = pages

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        order = self._pages.checkout.order(order_id)
        if order is None:
            raise falcon.HTTPNotFound(description="no such order")
        self._pages.show(req, resp, order)


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    try:
        document = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _optional_text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) in (36, 38)  # hyphenated, optionally in braces


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 2000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
