"""Wiring of the Idram simulator: the payment form, its page, the result calls, the controls."""

from __future__ import annotations

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
from sandbox.idram import control
from sandbox.idram.results import (
    Delivery,
    ResultSender,
    answered_ok,
    confirmation_fields,
    precheck_fields,
)
from sandbox.idram.scenarios import ScenarioBook, ScenarioError
from sandbox.idram.state import (
    BUILTIN_ACCOUNT,
    Account,
    BillConflict,
    IdramState,
)
from sandbox.kit import (
    RecordingMiddleware,
    cabinet_urls,
    form_fields,
    form_recorder,
    is_control,
)
from sandbox.web import ScenariosResource

PAYMENT_PATH: Final = "/Payment/GetPayment"
LANGUAGES: Final = ("EN", "AM", "RU")
# The customer waits on Idram's page while the precheck is asked: never long.
PRECHECK_TIMEOUT_S: Final = 5.0
MAX_FIELD_LENGTH: Final = 200
# Form fields whose values requests are recorded without.
_SECRET: Final = ("secret", "key", "password")
WsgiApp = falcon.App[falcon.Request, falcon.Response]


def form_of(raw: bytes) -> dict[str, str]:
    """A form body's fields (first value of each name); undecodable bytes replaced."""
    return form_fields(raw.decode("utf-8", "replace"))


def error_page(resp: falcon.Response, status: int, message: str) -> None:
    """Idram's answer to a form it cannot take: an HTML page, not JSON."""
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = falcon.MEDIA_HTML
    resp.text = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Idram — error</title>"
        f'<main><h1>Payment cannot be made</h1><p id="error">{html.escape(message)}</p></main>'
    )


class IdramCheckout:
    """The simulator's part of the hosted page: its orders, and what paying means at Idram."""

    def __init__(
        self,
        state: IdramState,
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
        """Precheck, then (if answered OK) the confirmation; a decline sends nothing."""
        account = self.state.account(order.extra["rec_account"])
        if account is None:  # pragma: no cover - accounts are never removed while orders live
            self.state.orders.update(order, "declined", declined_by="unknown account")
            return
        self.state.point_home(order, account)
        if not paid:
            self.state.orders.update(order, declined_by="customer")
            return
        scenario = self.scenarios.for_order(order)
        self.state.orders.update(order, scenario=scenario.id)
        bill_no = order.extra["merchant_ref"]
        precheck = Delivery(
            order.order_id,
            bill_no,
            "precheck",
            account.result_url,
            precheck_fields(order, scenario.precheck_amount_for(order)),
        )
        answer = self.sender.send_now(
            precheck, min(PRECHECK_TIMEOUT_S, self.config.callback_timeout_s)
        )
        if not answered_ok(answer):
            self.state.orders.update(order, "declined", declined_by="precheck")
            return
        self.state.new_payment(order)
        self.state.orders.update(order, precheck="OK")
        confirmation = Delivery(
            order.order_id,
            bill_no,
            "confirmation",
            account.result_url,
            confirmation_fields(order, account.secret_key, wrong_checksum=scenario.wrong_checksum),
        )
        delay = (
            self.config.callback_delay_s
            if scenario.result_delay_s is None
            else scenario.result_delay_s
        )
        for at in result_times(self.sender.now(), delay, scenario.result):
            self.sender.schedule(at, confirmation)

    def resend(self, order: HostedOrder) -> Delivery | None:
        """The order's confirmation again, now (the same EDP_TRANS_ID); None if it has none."""
        account = self.state.account(order.extra["rec_account"])
        if order.status != "paid" or "trans_id" not in order.extra or account is None:
            return None
        delivery = Delivery(
            order.order_id,
            order.extra["merchant_ref"],
            "confirmation",
            account.result_url,
            confirmation_fields(order, account.secret_key),
        )
        self.sender.schedule(self.sender.now(), delivery)
        return delivery


class PaymentResource:
    """``POST /Payment/GetPayment``: the merchant's form, posted by the customer's browser."""

    def __init__(self, state: IdramState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = form_of(req.context.raw_body or b"")
        problem = _form_problem(form)
        if problem is not None:
            return error_page(resp, 400, problem)
        account = self._state.account(form["EDP_REC_ACCOUNT"])
        if account is None:
            return error_page(resp, 400, "Unknown merchant (EDP_REC_ACCOUNT)")
        try:
            order = self._state.open_order(account, form)
        except BillConflict:
            return error_page(resp, 409, "This bill was already posted with another amount")
        # Post/redirect/get: a reload of Idram's page does not post the form again.
        raise falcon.HTTPSeeOther(f"{req.root_path}/_page/{order.order_id}")


def _form_problem(form: Mapping[str, str]) -> str | None:
    for name in ("EDP_REC_ACCOUNT", "EDP_AMOUNT", "EDP_BILL_NO"):
        if not form.get(name, "").strip():
            return f"{name} is required"
    if any(len(value) > MAX_FIELD_LENGTH for value in form.values()):
        return f"a field is longer than {MAX_FIELD_LENGTH} characters"
    language = form.get("EDP_LANGUAGE")
    if language is not None and language not in LANGUAGES:
        return f"EDP_LANGUAGE must be one of {', '.join(LANGUAGES)}"
    amount = form["EDP_AMOUNT"]
    try:
        number = Decimal(amount)
    except InvalidOperation:
        number = Decimal(0)
    if (
        not number.is_finite()
        or number <= 0
        or not all(c.isdigit() or c == "." for c in amount)
        or -int(number.as_tuple().exponent) > 2
    ):
        return "EDP_AMOUNT must be an amount greater than zero (a dot before any fraction)"
    return None


@dataclass
class IdramSimulator:
    """A running simulator: what tests may reach into."""

    app: WsgiApp
    config: SimulatorConfig
    state: IdramState
    scenarios: ScenarioBook
    sender: ResultSender
    checkout: IdramCheckout
    pages: HostedPages

    def close(self) -> None:
        """Stop the result thread; pending confirmations are dropped."""
        self.sender.stop()


def builtin_account(environ: Mapping[str, str]) -> Account:
    """The built-in account, its cabinet from ``SANDBOX_IDRAM_RESULT_URL``,
    ``SANDBOX_IDRAM_SUCCESS_URL`` and ``SANDBOX_IDRAM_FAIL_URL`` when set."""
    return replace(BUILTIN_ACCOUNT, **cabinet_urls(environ, "idram"))


def create_idram_simulator(
    config: SimulatorConfig,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
) -> IdramSimulator:
    """Build the simulator; its result thread starts with the first scheduled confirmation."""
    state = IdramState(builtin_account(os.environ if environ is None else environ))
    scenarios = ScenarioBook()
    sender = ResultSender(state.record_delivery, clock=clock, timeout_s=config.callback_timeout_s)
    checkout = IdramCheckout(state, scenarios, sender, config)
    pages = HostedPages(checkout, "Idram", colour="#fdeede")
    record = form_recorder(state.record_request, _SECRET)
    recording = RecordingMiddleware(_kind, record, config.latency_s)
    app: WsgiApp = falcon.App(middleware=[recording])
    app.add_route(PAYMENT_PATH, PaymentResource(state))
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
    return IdramSimulator(app, config, state, scenarios, sender, checkout, pages)


def _kind(path: str) -> str:
    if is_control(path):
        return "control"
    if path == PAYMENT_PATH:
        return "payment"
    if path.startswith("/_page/"):
        return "page"
    return "other"
