"""Wiring of the ArCa simulator: state, scenarios, the page, middleware and routes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

import falcon

from sandbox.arca import api, control
from sandbox.arca.scenarios import ScenarioBook, ScenarioError
from sandbox.arca.state import PAGE_PATH, ArcaState, Clock
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

API_ROOT: Final = "/payment/rest"
REGISTER_PATH: Final = f"{API_ROOT}/register.do"
STATUS_PATH: Final = f"{API_ROOT}/getOrderStatusExtended.do"
REFUND_PATH: Final = f"{API_ROOT}/refund.do"
# The API's kinds of request (delayed by the sandbox's latency; their bodies are forms).
API_KINDS: Final = ("register", "status", "refund")
WsgiApp = falcon.App[falcon.Request, falcon.Response]


@dataclass
class ArcaSimulator:
    """A running simulator: what tests may reach into."""

    app: WsgiApp
    config: SimulatorConfig
    state: ArcaState
    scenarios: ScenarioBook
    pages: HostedPages

    def close(self) -> None:
        """Nothing runs in the background: no callbacks are made."""


def create_arca_simulator(
    config: SimulatorConfig, *, clock: Clock = time.monotonic
) -> ArcaSimulator:
    state = ArcaState(clock)
    scenarios = ScenarioBook()
    pages = HostedPages(state, "ArCa iPay", colour="#e3f2fd")
    recording = RecordingMiddleware(_kind, _record(state), config.latency_s, delayed=API_KINDS)
    app: WsgiApp = falcon.App(middleware=[recording])
    app.add_route(REGISTER_PATH, api.RegisterResource(state, scenarios))
    app.add_route(STATUS_PATH, api.StatusResource(state))
    app.add_route(REFUND_PATH, api.RefundResource(state))
    app.add_route(PAGE_PATH, api.PayPageResource(state, pages))
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
    return ArcaSimulator(app, config, state, scenarios, pages)


def _record(state: ArcaState) -> Recorder:
    """How the engine's requests are kept: query, body (passwords redacted), answer."""

    def record(req: falcon.Request, resp: falcon.Response, kind: str) -> None:
        raw = raw_body(req)
        body = _form(raw) if kind in API_KINDS else parsed_body(raw)
        state.record(
            ApiRequest(
                method=req.method,
                path=req.path,
                kind=kind,
                query=_redacted({k: str(v) for k, v in req.params.items()}),
                body=_redacted(body),
                status=resp.status_code,
                response=resp.media if kind != "page" else None,
                time=utc_now_iso(),
            )
        )

    return record


def _form(raw: bytes) -> object:
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True)) if raw else None
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace")


def _kind(path: str) -> str:
    if is_control(path):
        return "control"
    return {
        REGISTER_PATH: "register",
        STATUS_PATH: "status",
        REFUND_PATH: "refund",
        PAGE_PATH: "page",
    }.get(path, "page" if path.startswith("/_page/") else "other")


def _redacted(document: Any) -> Any:
    if isinstance(document, dict):
        return {k: REDACTED if "password" in str(k).lower() else v for k, v in document.items()}
    return document
