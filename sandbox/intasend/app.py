"""Wiring of the IntaSend simulator: collaborators, middleware, routes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import falcon

from sandbox.config import SimulatorConfig
from sandbox.intasend import api, control, statement, transfers
from sandbox.intasend.accounts import Account, Webhook
from sandbox.intasend.scenarios import ScenarioBook, ScenarioError
from sandbox.intasend.settings import IntaSendSimSettings
from sandbox.intasend.state import Clock, RequestRecord, SimulatorState
from sandbox.intasend.webhooks import WebhookDispatcher
from sandbox.web import ScenariosResource, parsed_body, redacted_headers

CONTROL_PREFIX: Final = "/_sim"
API_PREFIX: Final = "/api/v1"
STK_PUSH_PATH: Final = f"{API_PREFIX}/payment/mpesa-stk-push/"
COLLECTION_PATH: Final = f"{API_PREFIX}/payment/collection/"
STATUS_PATH: Final = f"{API_PREFIX}/payment/status/"
CHARGEBACKS_PATH: Final = f"{API_PREFIX}/chargebacks/"
SEND_MONEY_PATH: Final = f"{API_PREFIX}/send-money/"
TRANSACTIONS_PATH: Final = f"{API_PREFIX}/transactions/"
REQUEST_KINDS: Final = {
    STK_PUSH_PATH: "stk_push",
    COLLECTION_PATH: "collection",
    STATUS_PATH: "status",
    TRANSACTIONS_PATH: "transactions",
}
WsgiApp = falcon.App[falcon.Request, falcon.Response]


@dataclass
class IntaSendSimulator:
    """A running simulator: the WSGI app and the collaborators tests may reach into."""

    app: WsgiApp
    config: SimulatorConfig
    settings: IntaSendSimSettings
    state: SimulatorState
    scenarios: ScenarioBook
    dispatcher: WebhookDispatcher
    transfers: transfers.TransferBook

    def close(self) -> None:
        """Stop the webhook thread; pending deliveries are dropped."""
        self.dispatcher.stop()


def create_simulator(
    config: SimulatorConfig,
    settings: IntaSendSimSettings | None = None,
    *,
    clock: Clock = time.monotonic,
) -> IntaSendSimulator:
    """Build a simulator (settings from ``SANDBOX_INTASEND_*`` unless given)."""
    settings = settings if settings is not None else IntaSendSimSettings.from_env()
    default_webhook = (
        Webhook(settings.webhook_url, settings.webhook_challenge) if settings.webhook_url else None
    )
    state = SimulatorState(clock, default_webhook)
    scenarios = ScenarioBook()

    def challenge(account: Account) -> str:
        return account.webhook.challenge if account.webhook else settings.webhook_challenge

    def prepare(invoice_id: str, invoice_state: str) -> tuple[str, Mapping[str, object]] | None:
        if invoice_id.startswith((transfers.CHARGEBACK_KEY, transfers.SEND_MONEY_KEY)):
            return book.prepare(invoice_id, challenge)
        invoice = state.invoice(invoice_id)
        account = state.account(invoice.public_key) if invoice else None
        if invoice is None or account is None or account.webhook is None:
            return None
        body = {**invoice.document(invoice_state), "challenge": account.webhook.challenge}
        return account.webhook.url, body

    dispatcher = WebhookDispatcher(
        prepare,
        state.record_delivery,
        clock=clock,
        timeout_s=config.callback_timeout_s,
        retry_delays_s=settings.retry_delays_s,
    )
    book = transfers.TransferBook(state, dispatcher, config.callback_delay_s)
    app: WsgiApp = falcon.App(middleware=[RecordingMiddleware(state, config.latency_s)])
    push_args = (state, scenarios, dispatcher, config, settings)
    app.add_route(STK_PUSH_PATH, api.StkPushResource(*push_args))
    app.add_route(COLLECTION_PATH, api.CollectionResource(*push_args))
    app.add_route(STATUS_PATH, api.StatusResource(state))
    chargebacks = transfers.ChargebacksResource(state, settings, book)
    app.add_route(CHARGEBACKS_PATH, chargebacks)
    app.add_route(f"{CHARGEBACKS_PATH}{{chargeback_id}}/", chargebacks, suffix="one")
    send_money = transfers.SendMoneyResource(state, settings, book)
    app.add_route(SEND_MONEY_PATH, send_money)
    for action in ("initiate", "approve", "status"):
        app.add_route(f"{SEND_MONEY_PATH}{action}/", send_money, suffix=action)
    app.add_route(TRANSACTIONS_PATH, statement.TransactionsResource(state, settings))
    _add_control_routes(app, state, settings, scenarios, dispatcher, book)
    return IntaSendSimulator(app, config, settings, state, scenarios, dispatcher, book)


def _add_control_routes(
    app: WsgiApp,
    state: SimulatorState,
    settings: IntaSendSimSettings,
    scenarios: ScenarioBook,
    dispatcher: WebhookDispatcher,
    book: transfers.TransferBook,
) -> None:
    p = CONTROL_PREFIX
    invoices = control.InvoicesResource(state, dispatcher)
    app.add_route(f"{p}/webhooks", control.WebhooksResource(state))
    app.add_route(f"{p}/accounts", control.AccountsResource(state))
    app.add_route(f"{p}/scenarios", ScenariosResource(scenarios, ScenarioError))
    app.add_route(f"{p}/requests", control.RequestsResource(state))
    app.add_route(f"{p}/deliveries", control.DeliveriesResource(state))
    app.add_route(f"{p}/invoices", invoices)
    app.add_route(f"{p}/invoices/{{invoice_id}}", invoices, suffix="one")
    app.add_route(f"{p}/invoices/{{invoice_id}}/resend", invoices, suffix="resend")
    app.add_route(
        f"{p}/transfer-scenarios",
        ScenariosResource(book.scenarios, transfers.TransferScenarioError),
    )
    app.add_route(f"{p}/transfers", transfers.WitnessResource(book))
    app.add_route(f"{p}/statement/discrepancies", control.DiscrepanciesResource(state, settings))
    app.add_route(f"{p}/reset", control.ResetResource(state, scenarios, dispatcher, book.reset))
    app.add_route(f"{p}/health", control.HealthResource(state, dispatcher))


class RecordingMiddleware:
    """Reads every body into ``req.context.raw_body``; delays and records API calls."""

    def __init__(self, state: SimulatorState, latency_s: float) -> None:
        self._state = state
        self._latency_s = latency_s

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.raw_body = req.bounded_stream.read()
        if self._latency_s and not _is_control(req.path):
            time.sleep(self._latency_s)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if _is_control(req.path):
            return
        self._state.record_request(
            RequestRecord(
                method=req.method,
                path=req.path,
                kind=_request_kind(req.path),
                headers=redacted_headers(req),
                body=parsed_body(getattr(req.context, "raw_body", b"")),
                status=resp.status_code,
                response=resp.media if resp.media is not None else resp.text,
                time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            )
        )


def _request_kind(path: str) -> str:
    if path.startswith(CHARGEBACKS_PATH):
        return "chargeback"
    if path.startswith(SEND_MONEY_PATH):
        return "send_money"
    return REQUEST_KINDS.get(path, "other")


def _is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(f"{CONTROL_PREFIX}/")
