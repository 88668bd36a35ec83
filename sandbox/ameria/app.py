"""Wiring of the Ameria simulator: state, scenarios, the page, middleware and routes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import falcon

from sandbox.ameria import api, control
from sandbox.ameria.scenarios import ScenarioBook, ScenarioError
from sandbox.ameria.state import AmeriaState, Clock, RequestRecord, utc_now_iso
from sandbox.config import SimulatorConfig
from sandbox.hosted import HostedPages
from sandbox.web import REDACTED, ScenariosResource, parsed_body

CONTROL_PREFIX: Final = "/_sim"
API_ROOT: Final = "/VPOS"
INIT_PATH: Final = f"{API_ROOT}/api/VPOS/InitPayment"
DETAILS_PATH: Final = f"{API_ROOT}/api/VPOS/GetPaymentDetails"
PAY_PATH: Final = f"{API_ROOT}/Payments/Pay"
WsgiApp = falcon.App[falcon.Request, falcon.Response]


@dataclass
class AmeriaSimulator:
    """A running simulator: what tests may reach into."""

    app: WsgiApp
    config: SimulatorConfig
    state: AmeriaState
    scenarios: ScenarioBook
    pages: HostedPages

    def close(self) -> None:
        """Nothing runs in the background: Ameria makes no callbacks."""


def create_ameria_simulator(
    config: SimulatorConfig, *, clock: Clock = time.monotonic
) -> AmeriaSimulator:
    state = AmeriaState(clock)
    scenarios = ScenarioBook()
    pages = HostedPages(state, "Ameriabank vPOS", colour="#fbe9e7")
    app: WsgiApp = falcon.App(middleware=[RecordingMiddleware(state, config.latency_s)])
    app.add_route(INIT_PATH, api.InitPaymentResource(state, scenarios))
    app.add_route(DETAILS_PATH, api.PaymentDetailsResource(state))
    app.add_route(PAY_PATH, api.PayPageResource(state, pages))
    pages.add_routes(app)
    p = CONTROL_PREFIX
    orders = control.OrdersResource(state)
    app.add_route(f"{p}/orders", orders)
    app.add_route(f"{p}/orders/{{order_id}}", orders, suffix="one")
    app.add_route(f"{p}/orders/{{order_id}}/status", orders, suffix="status")
    app.add_route(f"{p}/accounts", control.AccountsResource(state))
    app.add_route(f"{p}/scenarios", ScenariosResource(scenarios, ScenarioError))
    app.add_route(f"{p}/requests", control.RequestsResource(state))
    app.add_route(f"{p}/reset", control.ResetResource(state, scenarios))
    app.add_route(f"{p}/health", control.HealthResource(state))
    return AmeriaSimulator(app, config, state, scenarios, pages)


class RecordingMiddleware:
    """Reads every body into ``req.context.raw_body``; delays and records the vPOS's requests."""

    def __init__(self, state: AmeriaState, latency_s: float) -> None:
        self._state = state
        self._latency_s = latency_s

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.raw_body = req.bounded_stream.read()
        if self._latency_s and _kind(req.path) in ("init", "details"):
            time.sleep(self._latency_s)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        kind = _kind(req.path)
        if kind == "control":
            return
        self._state.record(
            RequestRecord(
                method=req.method,
                path=req.path,
                kind=kind,
                query={k: str(v) for k, v in req.params.items()},
                body=_redacted(parsed_body(getattr(req.context, "raw_body", b""))),
                status=resp.status_code,
                response=resp.media if kind != "page" else None,
                time=utc_now_iso(),
            )
        )


def _kind(path: str) -> str:
    if path == CONTROL_PREFIX or path.startswith(f"{CONTROL_PREFIX}/"):
        return "control"
    return {INIT_PATH: "init", DETAILS_PATH: "details", PAY_PATH: "page"}.get(
        path, "page" if path.startswith("/_page/") else "other"
    )


def _redacted(document: object) -> object:
    if isinstance(document, dict):
        return {k: REDACTED if "password" in str(k).lower() else v for k, v in document.items()}
    return document
