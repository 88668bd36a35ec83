"""Wiring of the Telcell simulator: the invoice link, its page, the results, the controls."""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Final

import falcon

from sandbox.cabinet import add_controls, result_times
from sandbox.config import SimulatorConfig
from sandbox.due import Clock
from sandbox.hosted import HostedOrder, HostedPages
from sandbox.kit import (
    RecordingMiddleware,
    cabinet_urls,
    form_fields,
    form_recorder,
    is_control,
)
from sandbox.telcell import control
from sandbox.telcell.results import (
    CURRENCY,
    PAID,
    REJECTED,
    Delivery,
    ResultSender,
    md5,
    result_fields,
)
from sandbox.telcell.scenarios import ScenarioBook, ScenarioError
from sandbox.telcell.state import (
    BUILTIN_SHOP,
    InvoiceConflict,
    Shop,
    TelcellState,
)
from sandbox.web import ScenariosResource

INVOICE_PATH: Final = "/invoices"
LANGUAGES: Final = ("am", "en", "ru")
REQUIRED: Final = (
    "action",
    "issuer",
    "currency",
    "price",
    "product",
    "issuer_id",
    "valid_days",
    "security_code",
)
MAX_FIELD_LENGTH: Final = 500
# Fields whose values requests are recorded without.
_SECRET: Final = ("secret", "shop_key", "password")
WsgiApp = falcon.App[falcon.Request, falcon.Response]


def error_page(resp: falcon.Response, status: int, message: str) -> None:
    """Telcell's answer to a link it cannot take: an HTML page, not JSON."""
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = falcon.MEDIA_HTML
    resp.text = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Telcell — error</title>"
        f'<main><h1>The invoice cannot be shown</h1><p id="error">{html.escape(message)}</p></main>'
    )


def security_code(shop_key: str, params: Mapping[str, str]) -> str:
    """MD5 of shop_key + issuer + currency + price + product + issuer_id + valid_days."""
    names = ("issuer", "currency", "price", "product", "issuer_id", "valid_days")
    return md5(shop_key + "".join(params[name] for name in names))


def unb64(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


class TelcellCheckout:
    """The simulator's part of the hosted page: its invoices, and what closing one means."""

    def __init__(
        self,
        state: TelcellState,
        scenarios: ScenarioBook,
        sender: ResultSender,
        config: SimulatorConfig,
    ) -> None:
        self.state = state
        self.scenarios = scenarios
        self.sender = sender
        self.config = config

    def order(self, order_id: str) -> HostedOrder | None:
        return self.state.orders.order(order_id)

    def page_delay_s(self, order: HostedOrder) -> float:
        return self.scenarios.for_order(order).page_delay_s

    def decide(self, order: HostedOrder, paid: bool) -> None:
        """``PAID`` or ``REJECTED`` to the shop's RESULT_URL, as the scenario says."""
        shop = self.state.shop(order.extra["issuer"])
        if shop is None:  # pragma: no cover - shops are never removed while invoices live
            return
        self.state.point_home(order, shop)
        scenario = self.scenarios.for_order(order)
        self.state.close_invoice(order, PAID if paid else REJECTED)
        self.state.orders.update(order, scenario=scenario.id)
        delivery = Delivery(
            order.order_id,
            order.extra["merchant_ref"],
            shop.result_url,
            result_fields(order, shop.shop_key, wrong_checksum=scenario.wrong_checksum),
        )
        delay = (
            self.config.callback_delay_s
            if scenario.result_delay_s is None
            else scenario.result_delay_s
        )
        for at in result_times(self.sender.now(), delay, scenario.result):
            self.sender.schedule(at, delivery)

    def resend(self, order: HostedOrder) -> Delivery | None:
        """The invoice's result again, now (the same payment_id); None while it is open."""
        shop = self.state.shop(order.extra["issuer"])
        if "payment_id" not in order.extra or shop is None:
            return None
        delivery = Delivery(
            order.order_id,
            order.extra["merchant_ref"],
            shop.result_url,
            result_fields(order, shop.shop_key),
        )
        self.sender.schedule(self.sender.now(), delivery)
        return delivery


class InvoiceResource:
    """``GET /invoices?action=PostInvoice&…`` (or the same fields posted as a form)."""

    def __init__(self, state: TelcellState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._open(req, resp, form_fields(req.query_string))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = (req.context.raw_body or b"").decode("utf-8", "replace")
        self._open(req, resp, {**form_fields(req.query_string), **form_fields(body)})

    def _open(self, req: falcon.Request, resp: falcon.Response, params: dict[str, str]) -> None:
        problem = _params_problem(params)
        if problem is not None:
            return error_page(resp, 400, problem)
        shop = self._state.shop(params["issuer"])
        if shop is None:
            return error_page(resp, 400, "Unknown issuer")
        presented = params["security_code"].strip().lower().encode()
        if not hmac.compare_digest(security_code(shop.shop_key, params).encode(), presented):
            return error_page(resp, 400, "Wrong security_code")
        product = unb64(params["product"]) or ""
        reference = unb64(params["issuer_id"]) or ""  # both checked above
        try:
            order = self._state.open_invoice(shop, params, product, reference)
        except InvoiceConflict:
            return error_page(resp, 409, "This issuer_id was already invoiced at another price")
        raise falcon.HTTPSeeOther(f"{req.root_path}/_page/{order.order_id}")


def _params_problem(params: Mapping[str, str]) -> str | None:
    missing = [name for name in REQUIRED if not params.get(name, "").strip()]
    if missing:
        return f"missing: {', '.join(missing)}"
    if any(len(value) > MAX_FIELD_LENGTH for value in params.values()):
        return f"a parameter is longer than {MAX_FIELD_LENGTH} characters"
    if params["action"] != "PostInvoice":
        return "action must be PostInvoice"
    if params["currency"] != CURRENCY:
        return f"currency must be {CURRENCY}"
    price = params["price"]
    try:
        number = Decimal(price)
    except InvalidOperation:
        number = Decimal(0)
    if not number.is_finite() or number <= 0 or not all(c.isdigit() or c == "." for c in price):
        return "price must be an amount greater than zero"
    for name in ("product", "issuer_id"):
        if not unb64(params[name]):
            return f"{name} must be base64 of UTF-8 text"
    if not params["valid_days"].isdigit() or int(params["valid_days"]) < 1:
        return "valid_days must be a whole number of days >= 1"
    lang = params.get("lang")
    if lang is not None and lang not in LANGUAGES:
        return f"lang must be one of {', '.join(LANGUAGES)}"
    return None


@dataclass
class TelcellSimulator:
    """A running simulator: what tests may reach into."""

    app: WsgiApp
    config: SimulatorConfig
    state: TelcellState
    scenarios: ScenarioBook
    sender: ResultSender
    checkout: TelcellCheckout
    pages: HostedPages

    def close(self) -> None:
        """Stop the result thread; pending results are dropped."""
        self.sender.stop()


def builtin_shop(environ: Mapping[str, str]) -> Shop:
    """The built-in shop, its cabinet from ``SANDBOX_TELCELL_RESULT_URL``,
    ``SANDBOX_TELCELL_SUCCESS_URL`` and ``SANDBOX_TELCELL_FAIL_URL`` when set."""
    return replace(BUILTIN_SHOP, **cabinet_urls(environ, "telcell"))


def create_telcell_simulator(
    config: SimulatorConfig,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
) -> TelcellSimulator:
    """Build the simulator; its result thread starts with the first scheduled result."""
    state = TelcellState(builtin_shop(os.environ if environ is None else environ))
    scenarios = ScenarioBook()
    sender = ResultSender(state.record_delivery, clock=clock, timeout_s=config.callback_timeout_s)
    checkout = TelcellCheckout(state, scenarios, sender, config)
    pages = HostedPages(checkout, "Telcell Money", colour="#e3eefa")
    record = form_recorder(state.record_request, _SECRET)
    recording = RecordingMiddleware(_kind, record, config.latency_s)
    app: WsgiApp = falcon.App(middleware=[recording])
    app.add_route(INVOICE_PATH, InvoiceResource(state))
    pages.add_routes(app)
    add_controls(
        app,
        control.cabinet(state),
        control.orders(state, checkout),
        ScenariosResource(scenarios, ScenarioError),
        requests=state.requests,
        deliveries=state.deliveries,
        reset=(sender.clear, scenarios.clear, state.reset),
        health=lambda: control.health(state, sender),
    )
    return TelcellSimulator(app, config, state, scenarios, sender, checkout, pages)


def _kind(path: str) -> str:
    if is_control(path):
        return "control"
    if path == INVOICE_PATH:
        return "invoice"
    if path.startswith("/_page/"):
        return "page"
    return "other"
