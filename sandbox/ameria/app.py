"""Wiring of the Ameria simulator: state, scenarios, the page, middleware and routes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import falcon

from sandbox.ameria import api, control
from sandbox.ameria.scenarios import ScenarioBook, ScenarioError
from sandbox.ameria.state import AmeriaState, Clock
from sandbox.config import SimulatorConfig
from sandbox.hosted import HostedPages
from sandbox.kit import (
    CONTROL_PREFIX,
    HealthResource,
    Recorder,
    RecordingMiddleware,
    RequestsResource,
    ResetResource,
    is_control,
    raw_body,
    utc_now_iso,
)
from sandbox.vpos import ApiRequest, TransfersResource
from sandbox.web import REDACTED, ScenariosResource, parsed_body

API_ROOT: Final = "/VPOS"
INIT_PATH: Final = f"{API_ROOT}/api/VPOS/InitPayment"
DETAILS_PATH: Final = f"{API_ROOT}/api/VPOS/GetPaymentDetails"
REFUND_PATH: Final = f"{API_ROOT}/api/VPOS/RefundPayment"
PAY_PATH: Final = f"{API_ROOT}/Payments/Pay"
# The API's kinds of request (delayed by the sandbox's latency).
API_KINDS: Final = ("init", "details", "refund")
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
    recording = RecordingMiddleware(_kind, _record(state), config.latency_s, delayed=API_KINDS)
    app: WsgiApp = falcon.App(middleware=[recording])
    app.add_route(INIT_PATH, api.InitPaymentResource(state, scenarios))
    app.add_route(DETAILS_PATH, api.PaymentDetailsResource(state))
    app.add_route(REFUND_PATH, api.RefundPaymentResource(state))
    app.add_route(PAY_PATH, api.PayPageResource(state, pages))
    pages.add_routes(app)
    p = CONTROL_PREFIX
    orders = control.OrdersResource(state)
    app.add_route(f"{p}/orders", orders)
    app.add_route(f"{p}/orders/{{order_id}}", orders, suffix="one")
    app.add_route(f"{p}/orders/{{order_id}}/status", orders, suffix="status")
    app.add_route(f"{p}/accounts", control.AccountsResource(state))
    app.add_route(f"{p}/scenarios", ScenariosResource(scenarios, ScenarioError))
    app.add_route(f"{p}/requests", RequestsResource(state.requests, control.KINDS))
    app.add_route(f"{p}/transfers", TransfersResource(state.refunds))
    app.add_route(f"{p}/reset", ResetResource(state.reset, scenarios.clear))
    app.add_route(f"{p}/health", HealthResource(lambda: control.health(state)))
    return AmeriaSimulator(app, config, state, scenarios, pages)


def _record(state: AmeriaState) -> Recorder:
    """How the vPOS's requests are kept: query, body (passwords redacted), answer."""

    def record(req: falcon.Request, resp: falcon.Response, kind: str) -> None:
        state.record(
            ApiRequest(
                method=req.method,
                path=req.path,
                kind=kind,
                query={k: str(v) for k, v in req.params.items()},
                body=_redacted(parsed_body(raw_body(req))),
                status=resp.status_code,
                response=resp.media if kind != "page" else None,
                time=utc_now_iso(),
            )
        )

    return record


def _kind(path: str) -> str:
    if is_control(path):
        return "control"
    return {
        INIT_PATH: "init",
        DETAILS_PATH: "details",
        REFUND_PATH: "refund",
        PAY_PATH: "page",
    }.get(path, "page" if path.startswith("/_page/") else "other")


def _redacted(document: object) -> object:
    if isinstance(document, dict):
        return {k: REDACTED if "password" in str(k).lower() else v for k, v in document.items()}
    return document
