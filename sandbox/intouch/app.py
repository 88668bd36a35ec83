"""Wiring of the InTouch simulator: collaborators, middleware, routes."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

import falcon

from sandbox.config import SimulatorConfig
from sandbox.intouch import api, control
from sandbox.intouch.callbacks import CallbackDispatcher
from sandbox.intouch.digest import DigestAuthority
from sandbox.intouch.scenarios import ScenarioBook
from sandbox.intouch.state import (
    BUILTIN_AGENCY,
    Agency,
    Clock,
    RequestRecord,
    SimulatorState,
    utc_now_iso,
)
from sandbox.web import REDACTED, parsed_body, redacted_headers

CONTROL_PREFIX: Final = "/_sim"
API_ROOT: Final = "/apidist/sec"
CHECKOUT_PATH: Final = f"{CONTROL_PREFIX}/touchpay/checkout"
WsgiApp = falcon.App[falcon.Request, falcon.Response]
_SECRET_NAMES: Final = ("password", "secure_code")


@dataclass
class InTouchSimulator:
    """A running simulator: what tests may reach into."""

    app: WsgiApp
    config: SimulatorConfig
    state: SimulatorState
    scenarios: ScenarioBook
    dispatcher: CallbackDispatcher
    digest: DigestAuthority

    def close(self) -> None:
        """Stop the callback thread; pending callbacks are dropped."""
        self.dispatcher.stop()


def builtin_agency(environ: Mapping[str, str]) -> Agency:
    """The built-in agency, with ``SANDBOX_INTOUCH_*`` overrides.

    ``SANDBOX_INTOUCH_CALLBACK_URL`` (TouchPay's callback URL for it),
    ``SANDBOX_INTOUCH_DOMAIN`` (its registered domain) and
    ``SANDBOX_INTOUCH_CALLBACK_JSON_BODY`` (``1``: send TouchPay's fields as a JSON body too).
    """
    agency = BUILTIN_AGENCY
    url = environ.get("SANDBOX_INTOUCH_CALLBACK_URL", "").strip()
    if url:
        if not url.startswith(("http://", "https://")):
            raise ValueError("SANDBOX_INTOUCH_CALLBACK_URL must be an http(s) URL")
        agency = replace(agency, callback_url=url)
    domain = environ.get("SANDBOX_INTOUCH_DOMAIN", "").strip()
    if domain:
        agency = replace(agency, domain_name=domain)
    json_body = environ.get("SANDBOX_INTOUCH_CALLBACK_JSON_BODY", "").strip().lower()
    if json_body:
        if json_body not in ("0", "1", "true", "false"):
            raise ValueError("SANDBOX_INTOUCH_CALLBACK_JSON_BODY must be 0 or 1")
        agency = replace(agency, callback_json_body=json_body in ("1", "true"))
    return agency


def create_intouch_simulator(
    config: SimulatorConfig,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
) -> InTouchSimulator:
    """Build the simulator; its callback thread starts with the first scheduled callback."""
    state = SimulatorState(clock, builtin_agency(os.environ if environ is None else environ))
    scenarios = ScenarioBook()
    dispatcher = CallbackDispatcher(
        state.record_delivery, clock=clock, timeout_s=config.callback_timeout_s
    )
    digest = DigestAuthority(clock)
    app: WsgiApp = falcon.App(middleware=[RecordingMiddleware(state, config.latency_s)])
    app.add_route(
        f"{API_ROOT}/touchpayapi/{{agency}}/transaction",
        api.PushResource(state, digest, scenarios, dispatcher, config),
    )
    app.add_route(f"{API_ROOT}/v1/{{agency}}/check_status", api.CheckStatusResource(state, digest))
    _add_control_routes(app, state, scenarios, dispatcher, config)
    return InTouchSimulator(app, config, state, scenarios, dispatcher, digest)


def _add_control_routes(
    app: WsgiApp,
    state: SimulatorState,
    scenarios: ScenarioBook,
    dispatcher: CallbackDispatcher,
    config: SimulatorConfig,
) -> None:
    p = CONTROL_PREFIX
    agencies = control.AgenciesResource(state)
    transactions = control.TransactionsResource(state, dispatcher)
    app.add_route(CHECKOUT_PATH, control.CheckoutResource(state, scenarios, dispatcher, config))
    app.add_route(f"{p}/touchpay/sdk.js", control.SdkScriptResource())
    app.add_route(f"{p}/agencies", agencies)
    app.add_route(f"{p}/agencies/{{agency_code}}", agencies, suffix="one")
    app.add_route(f"{p}/scenarios", control.ScenariosResource(scenarios))
    app.add_route(f"{p}/requests", control.RequestsResource(state))
    app.add_route(f"{p}/deliveries", control.DeliveriesResource(state))
    app.add_route(f"{p}/transactions", transactions)
    app.add_route(f"{p}/transactions/{{order_number}}", transactions, suffix="one")
    app.add_route(f"{p}/transactions/{{order_number}}/resend", transactions, suffix="resend")
    app.add_route(f"{p}/reset", control.ResetResource(state, scenarios, dispatcher))
    app.add_route(f"{p}/health", control.HealthResource(state, dispatcher))


class RecordingMiddleware:
    """Reads every body into ``req.context.raw_body``; delays and records API calls."""

    def __init__(self, state: SimulatorState, latency_s: float) -> None:
        self._state = state
        self._latency_s = latency_s

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.raw_body = req.bounded_stream.read()
        if self._latency_s and _kind(req.path) not in ("control", "checkout"):
            time.sleep(self._latency_s)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        kind = _kind(req.path)
        if kind == "control":
            return
        self._state.record_request(
            RequestRecord(
                method=req.method,
                path=req.path,
                kind=kind,
                query={k: _redact(k, str(v)) for k, v in req.params.items()},
                headers=redacted_headers(req),
                body=_redact_document(parsed_body(getattr(req.context, "raw_body", b""))),
                status=resp.status_code,
                response=resp.media,
                time=utc_now_iso(),
            )
        )


def _kind(path: str) -> str:
    if path == CHECKOUT_PATH:
        return "checkout"
    if path == CONTROL_PREFIX or path.startswith(f"{CONTROL_PREFIX}/"):
        return "control"
    if path.endswith("/transaction"):
        return "push"
    if path.endswith("/check_status"):
        return "check_status"
    return "other"


def _redact(name: str, value: str) -> str:
    return REDACTED if any(s in name.lower() for s in _SECRET_NAMES) else value


def _redact_document(document: object) -> object:
    if isinstance(document, dict):
        return {
            k: REDACTED if any(s in str(k).lower() for s in _SECRET_NAMES) else v
            for k, v in document.items()
        }
    return document
