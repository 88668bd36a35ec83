"""Wiring of the FastShift simulator: collaborators, middleware, routes."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import falcon

from sandbox.config import SimulatorConfig
from sandbox.fastshift import api, control
from sandbox.fastshift.checkout import FastShiftCheckout
from sandbox.fastshift.scenarios import ScenarioBook, ScenarioError
from sandbox.fastshift.state import Clock, RequestRecord, SimulatorState
from sandbox.fastshift.webhooks import WebhookDispatcher
from sandbox.hosted import HostedPages
from sandbox.kit import (
    CONTROL_PREFIX,
    DeliveriesResource,
    HealthResource,
    Recorder,
    RecordingMiddleware,
    RequestsResource,
    ResetResource,
    is_control,
    raw_body,
    utc_now_iso,
)
from sandbox.web import ScenariosResource, parsed_body, redacted_headers

API_ROOT: Final = "/api/en/vpos"
# The API's kinds of request (delayed by the sandbox's latency).
API_KINDS: Final = ("register", "status")
PAGE_TITLE: Final = "Pay by FastShift"
PAGE_COLOUR: Final = "#e6f4ef"
WsgiApp = falcon.App[falcon.Request, falcon.Response]


@dataclass
class FastShiftSimulator:
    """A running simulator: what tests may reach into."""

    app: WsgiApp
    config: SimulatorConfig
    state: SimulatorState
    scenarios: ScenarioBook
    dispatcher: WebhookDispatcher
    checkout: FastShiftCheckout
    pages: HostedPages

    def close(self) -> None:
        """Stop the webhook thread; pending webhooks and expiries are dropped."""
        self.dispatcher.stop()


def page_base_url(environ: Mapping[str, str]) -> str | None:
    """``SANDBOX_FASTSHIFT_PAGE_URL``: where browsers reach the simulator (``…/fastshift``).

    Unset, the redirect URL is built from the register request's own address,
    which is right whenever malipo and the browser reach the sandbox alike.
    """
    url = environ.get("SANDBOX_FASTSHIFT_PAGE_URL", "").strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValueError("SANDBOX_FASTSHIFT_PAGE_URL must be an http(s) URL")
    return url or None


def create_fastshift_simulator(
    config: SimulatorConfig,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
) -> FastShiftSimulator:
    """Build the simulator; its webhook thread starts with the first scheduled item."""
    env = os.environ if environ is None else environ
    state = SimulatorState(clock)
    scenarios = ScenarioBook(default_webhook_delay_s=config.callback_delay_s)
    dispatcher = WebhookDispatcher(
        state.record_delivery, clock=clock, timeout_s=config.callback_timeout_s
    )
    checkout = FastShiftCheckout(state, dispatcher)
    pages = HostedPages(checkout, PAGE_TITLE, PAGE_COLOUR)
    recording = RecordingMiddleware(_kind, _record(state), config.latency_s, delayed=API_KINDS)
    app: WsgiApp = falcon.App(middleware=[recording])
    app.add_route(
        f"{API_ROOT}/order/register",
        api.RegisterResource(state, scenarios, checkout, config, page_base_url(env)),
    )
    app.add_route(f"{API_ROOT}/order/status/{{order_number}}", api.StatusResource(state, checkout))
    app.add_route("/pay/{order_id}", api.PayPageResource(pages))
    pages.add_routes(app)
    _add_control_routes(app, state, scenarios, dispatcher, checkout)
    return FastShiftSimulator(app, config, state, scenarios, dispatcher, checkout, pages)


def _add_control_routes(
    app: WsgiApp,
    state: SimulatorState,
    scenarios: ScenarioBook,
    dispatcher: WebhookDispatcher,
    checkout: FastShiftCheckout,
) -> None:
    p = CONTROL_PREFIX
    orders = control.OrdersResource(state, checkout)
    app.add_route(f"{p}/orders", orders)
    app.add_route(f"{p}/orders/{{order_id}}", orders, suffix="one")
    app.add_route(f"{p}/orders/{{order_id}}/resend", orders, suffix="resend")
    app.add_route(f"{p}/orders/{{order_id}}/expire", orders, suffix="expire")
    app.add_route(f"{p}/accounts", control.AccountsResource(state))
    app.add_route(f"{p}/scenarios", ScenariosResource(scenarios, ScenarioError))
    app.add_route(f"{p}/requests", RequestsResource(state.requests))
    app.add_route(f"{p}/deliveries", DeliveriesResource(state.deliveries, "order_number"))
    app.add_route(f"{p}/reset", ResetResource(dispatcher.clear, scenarios.clear, state.reset))
    app.add_route(f"{p}/health", HealthResource(lambda: control.health(state, dispatcher)))


def _record(state: SimulatorState) -> Recorder:
    """How API calls and page requests are kept: headers (token redacted), body, answer."""

    def record(req: falcon.Request, resp: falcon.Response, kind: str) -> None:
        state.record_request(
            RequestRecord(
                method=req.method,
                path=req.path,
                kind=kind,
                query={k: str(v) for k, v in req.params.items()},
                headers=redacted_headers(req),
                body=parsed_body(raw_body(req)),
                status=resp.status_code,
                response=resp.media,
                time=utc_now_iso(),
            )
        )

    return record


def _kind(path: str) -> str:
    if is_control(path):
        return "control"
    if path == f"{API_ROOT}/order/register":
        return "register"
    if path.startswith(f"{API_ROOT}/order/status/"):
        return "status"
    if path.startswith(("/pay/", "/_page/")):
        return "page"
    return "other"
