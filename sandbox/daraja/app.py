"""Wiring of the Daraja simulator: collaborators, middleware, routes."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import falcon

from sandbox.config import SimulatorConfig
from sandbox.daraja import control, gateway, statement, transfer_api
from sandbox.daraja.callbacks import CallbackDispatcher
from sandbox.daraja.initiator import (
    BUILTIN_INITIATORS,
    CERTIFICATE_OUT_ENV,
    InitiatorKeys,
    process_keys,
)
from sandbox.daraja.scenarios import ScenarioBook, ScenarioError
from sandbox.daraja.state import Clock, RequestRecord, SimulatorState, utc_now_iso
from sandbox.daraja.transfer_state import TransferBook, TransferScenarios
from sandbox.web import ScenariosResource, parsed_body, redacted_headers

CONTROL_PREFIX: Final = "/_sim"
WsgiApp = falcon.App[falcon.Request, falcon.Response]
GATEWAY_KINDS: Final = {
    "/oauth/v1/generate": "oauth",
    "/mpesa/stkpush/v1/processrequest": "stkpush",
    "/mpesa/stkpushquery/v1/query": "query",
    "/mpesa/reversal/v1/request": "reversal",
    "/mpesa/b2c/v3/paymentrequest": "b2c",
    "/mpesa/transactionstatus/v1/query": "transactionstatus",
    "/pulltransactions/v1/register": "pullregister",
    "/pulltransactions/v1/query": "pull",
}


@dataclass
class Simulator:
    """A running simulator: the WSGI app and the collaborators tests may reach into."""

    app: WsgiApp
    config: SimulatorConfig
    state: SimulatorState
    scenarios: ScenarioBook
    dispatcher: CallbackDispatcher
    transfers: TransferBook
    transfer_scenarios: TransferScenarios
    keys: InitiatorKeys

    def close(self) -> None:
        """Stop the callback thread; pending callbacks are dropped."""
        self.dispatcher.stop()


def create_app(config: SimulatorConfig) -> WsgiApp:
    """The simulator's WSGI app (what gunicorn serves); state lives in this process."""
    return create_simulator(config).app


def create_simulator(
    config: SimulatorConfig,
    *,
    clock: Clock = time.monotonic,
    environ: Mapping[str, str] | None = None,
) -> Simulator:
    """Build a simulator; ``clock`` (seconds, monotonic) times tokens and outcomes.

    The callback thread starts with the first scheduled callback; call
    ``Simulator.close`` to stop it. When ``SANDBOX_DARAJA_CERTIFICATE_OUT`` is set (in
    ``environ``, by default the process's), the certificate is written there.
    """
    state = SimulatorState(clock, config.token_ttl_s)
    scenarios = ScenarioBook()
    dispatcher = CallbackDispatcher(
        state.record_delivery, clock=clock, timeout_s=config.callback_timeout_s
    )
    certificate_out = (os.environ if environ is None else environ).get(CERTIFICATE_OUT_ENV, "")
    keys = (
        InitiatorKeys.kept_at(certificate_out.strip())
        if certificate_out.strip()
        else process_keys()
    )
    transfers = TransferBook(clock)
    transfer_scenarios = TransferScenarios()
    app: WsgiApp = falcon.App(middleware=[RecordingMiddleware(state, config.latency_s)])
    _add_gateway_routes(app, state, scenarios, dispatcher, config)
    money_out = (state, transfers, transfer_scenarios, dispatcher, config, keys, BUILTIN_INITIATORS)
    app.add_route("/mpesa/reversal/v1/request", transfer_api.ReversalResource(*money_out))
    app.add_route("/mpesa/b2c/v3/paymentrequest", transfer_api.B2CResource(*money_out))
    app.add_route(
        "/mpesa/transactionstatus/v1/query", transfer_api.TransactionStatusResource(*money_out)
    )
    _add_control_routes(app, state, scenarios, dispatcher, transfers, transfer_scenarios)
    app.add_route(f"{CONTROL_PREFIX}/certificate", control.CertificateResource(keys))
    return Simulator(app, config, state, scenarios, dispatcher, transfers, transfer_scenarios, keys)


def _add_gateway_routes(
    app: WsgiApp,
    state: SimulatorState,
    scenarios: ScenarioBook,
    dispatcher: CallbackDispatcher,
    config: SimulatorConfig,
) -> None:
    app.add_route("/oauth/v1/generate", gateway.OAuthResource(state, config))
    app.add_route(
        "/mpesa/stkpush/v1/processrequest",
        gateway.StkPushResource(state, scenarios, dispatcher, config),
    )
    app.add_route(
        "/mpesa/stkpushquery/v1/query", gateway.StkQueryResource(state, scenarios, config)
    )
    app.add_route("/pulltransactions/v1/register", statement.PullRegisterResource(state))
    app.add_route("/pulltransactions/v1/query", statement.PullQueryResource(state))


def _add_control_routes(
    app: WsgiApp,
    state: SimulatorState,
    scenarios: ScenarioBook,
    dispatcher: CallbackDispatcher,
    transfers: TransferBook,
    transfer_scenarios: TransferScenarios,
) -> None:
    p = CONTROL_PREFIX
    transactions = control.TransactionsResource(state)
    app.add_route(f"{p}/requests", control.RequestsResource(state))
    app.add_route(f"{p}/callbacks", control.CallbacksResource(state))
    app.add_route(
        f"{p}/callbacks/{{checkout_request_id}}/resend", control.ResendResource(state, dispatcher)
    )
    app.add_route(f"{p}/transactions", transactions)
    app.add_route(f"{p}/transactions/{{checkout_request_id}}", transactions, suffix="one")
    app.add_route(f"{p}/scenarios", ScenariosResource(scenarios, ScenarioError))
    app.add_route(f"{p}/tokens/revoke", control.RevokeTokensResource(state))
    app.add_route(f"{p}/shortcodes", control.ShortcodesResource(state))
    app.add_route(f"{p}/apps", control.AppsResource(state))
    app.add_route(f"{p}/transfers", control.TransfersResource(state, transfers))
    app.add_route(f"{p}/transfers/scenarios", ScenariosResource(transfer_scenarios, ScenarioError))
    app.add_route(
        f"{p}/reset",
        control.ResetResource(state, scenarios, dispatcher, transfers, transfer_scenarios),
    )
    app.add_route(f"{p}/health", control.HealthResource(state, dispatcher))
    app.add_route(f"{p}/statement/discrepancies", statement.DiscrepanciesResource(state))
    app.add_route(f"{p}/statement.csv", statement.StatementResource(state))


class RecordingMiddleware:
    """Reads every body into ``req.context.raw_body``; delays and records gateway calls."""

    def __init__(self, state: SimulatorState, latency_s: float) -> None:
        self._state = state
        self._latency_s = latency_s

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.raw_body = req.bounded_stream.read()
        if self._latency_s and not _is_control(req.path):
            time.sleep(self._latency_s)

    def process_response(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        if _is_control(req.path):
            return
        self._state.record_request(
            RequestRecord(
                method=req.method,
                path=req.path,
                kind=GATEWAY_KINDS.get(req.path, "other"),
                headers=redacted_headers(req),
                body=parsed_body(getattr(req.context, "raw_body", b"")),
                status=resp.status_code,
                response=_redacted_media(resp.media),
                time=utc_now_iso(),
            )
        )


def _is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(f"{CONTROL_PREFIX}/")


def _redacted_media(media: object) -> object:
    """The response document, an issued access token replaced by ``<redacted>``."""
    if isinstance(media, dict) and "access_token" in media:
        return {**media, "access_token": "<redacted>"}
    return media
