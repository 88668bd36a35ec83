"""Wiring of the SMS simulator: its state and routes, as a falcon app of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import falcon

from sandbox.sms import control
from sandbox.sms.messaging import MessagingResource
from sandbox.sms.state import SmsState

MESSAGING_PATH: Final = "/version1/messaging"
CONTROL_PREFIX: Final = "/_sim/sms"
WsgiApp = falcon.App[falcon.Request, falcon.Response]


@dataclass
class SmsSimulator:
    """A running SMS simulator: the WSGI app and the state tests may reach into."""

    app: WsgiApp
    state: SmsState

    @staticmethod
    def serves(path: str) -> bool:
        """True for the paths this simulator answers (the rest belong to others)."""
        return path in (MESSAGING_PATH, CONTROL_PREFIX) or path.startswith(f"{CONTROL_PREFIX}/")


def create_sms_simulator() -> SmsSimulator:
    state = SmsState()
    app: WsgiApp = falcon.App()
    app.add_route(MESSAGING_PATH, MessagingResource(state))
    p = CONTROL_PREFIX
    app.add_route(f"{p}/messages", control.MessagesResource(state))
    app.add_route(f"{p}/requests", control.RequestsResource(state))
    app.add_route(f"{p}/failures", control.FailuresResource(state))
    app.add_route(f"{p}/accounts", control.AccountsResource(state))
    app.add_route(f"{p}/reset", control.ResetResource(state))
    return SmsSimulator(app, state)
