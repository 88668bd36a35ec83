"""Daraja's own endpoints: OAuth, STK push and STK push query.

Every answer uses Daraja's wire format; errors use its envelope
``{"requestId", "errorCode", "errorMessage"}``. Request bodies are read by the
app's middleware into ``req.context.raw_body``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping

import falcon

from sandbox.config import SimulatorConfig
from sandbox.daraja import ids
from sandbox.daraja.callbacks import CallbackDispatcher
from sandbox.daraja.results import STILL_PROCESSING, describe
from sandbox.daraja.scenarios import ErrorReply, ScenarioBook
from sandbox.daraja.state import SimulatorState, Transaction
from sandbox.daraja.validation import (
    InvalidField,
    password_matches,
    validate_push,
    validate_query,
)

ACCEPTED = "Success. Request accepted for processing"
# Sic: Daraja's query answer spells it with three s.
QUERY_ACCEPTED = "The service request has been accepted successsfully"
TRANSACTION_PENDING = "The transaction is being processed"
TRANSACTION_MISSING = "The transaction does not Exist"
MERCHANT_MISSING = "Merchant does not exist"
WRONG_CREDENTIALS = "Wrong credentials"

Sleep = Callable[[float], None]


def send_error(resp: falcon.Response, status: int, code: str, message: str) -> None:
    """Answer with Daraja's error envelope and a fresh requestId."""
    resp.status = status
    resp.media = {"requestId": ids.request_id(), "errorCode": code, "errorMessage": message}


def send_reply(resp: falcon.Response, reply: ErrorReply) -> None:
    send_error(resp, reply.status, reply.error_code, reply.error_message)


def bearer_token(req: falcon.Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def basic_credentials(req: falcon.Request) -> tuple[str, str] | None:
    """``(key, secret)`` from an ``Authorization: Basic`` header, if well formed."""
    scheme, _, encoded = (req.get_header("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, colon, secret = decoded.partition(":")
    return (key, secret) if colon and key else None


class OAuthResource:
    """``GET /oauth/v1/generate?grant_type=client_credentials`` with Basic auth."""

    def __init__(self, state: SimulatorState, config: SimulatorConfig) -> None:
        self._state = state
        self._expires_in = _seconds_text(config.token_ttl_s)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.get_param("grant_type") != "client_credentials":
            send_error(resp, 400, "400.008.02", "Invalid grant type passed")
            return
        credentials = basic_credentials(req)
        if credentials is None or not self._state.app_matches(*credentials):
            send_error(resp, 400, "400.008.01", "Invalid Authentication passed")
            return
        resp.media = {"access_token": self._state.issue_token(), "expires_in": self._expires_in}


class _AuthorizedJsonResource:
    """Shared checks of the POST endpoints: bearer token, content type, JSON object."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def _body(self, req: falcon.Request, resp: falcon.Response) -> Mapping[str, object] | None:
        """The JSON object sent, or ``None`` after answering the matching Daraja error."""
        token = bearer_token(req)
        if token is None or not self._state.token_valid(token):
            send_error(resp, 404, "404.001.03", "Invalid Access Token")
            return None
        media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            # What Daraja says, whatever the body holds.
            send_error(resp, 400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
            return None
        try:
            body = json.loads(req.context.raw_body)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            send_error(resp, 400, "400.002.02", "Bad Request - Invalid JSON")
            return None
        return body

    def _credentials_ok(
        self, resp: falcon.Response, shortcode: str, password: str, timestamp: str
    ) -> bool:
        """Check the shortcode exists and the password is its own; answer 500 if not."""
        passkey = self._state.passkey_for(shortcode)
        if passkey is None:
            send_error(resp, 500, "500.001.1001", MERCHANT_MISSING)
            return False
        if not password_matches(password, shortcode, passkey, timestamp):
            send_error(resp, 500, "500.001.1001", WRONG_CREDENTIALS)
            return False
        return True


class StkPushResource(_AuthorizedJsonResource):
    """``POST /mpesa/stkpush/v1/processrequest``: accept a push and schedule its outcome."""

    def __init__(
        self,
        state: SimulatorState,
        scenarios: ScenarioBook,
        dispatcher: CallbackDispatcher,
        config: SimulatorConfig,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__(state)
        self._scenarios = scenarios
        self._dispatcher = dispatcher
        self._config = config
        self._sleep = sleep

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._body(req, resp)
        if body is None:
            return
        try:
            push = validate_push(body)
        except InvalidField as exc:
            send_error(resp, 400, "400.002.02", str(exc))
            return
        if not self._credentials_ok(resp, push.shortcode, push.password, push.timestamp):
            return
        decision = self._scenarios.decide_push(
            push.phone, push.amount, self._config.callback_delay_s
        )
        if decision.error is not None:
            self._sleep(decision.push_delay_s)
            send_reply(resp, decision.error)
            return
        transaction = self._state.create_transaction(push, decision.outcome)
        self._dispatcher.schedule_transaction(transaction)
        # The prompt is already out when a slow answer reaches the client.
        self._sleep(decision.push_delay_s)
        resp.media = {
            "MerchantRequestID": transaction.merchant_request_id,
            "CheckoutRequestID": transaction.checkout_request_id,
            "ResponseCode": "0",
            "ResponseDescription": ACCEPTED,
            "CustomerMessage": ACCEPTED,
        }


class StkQueryResource(_AuthorizedJsonResource):
    """``POST /mpesa/stkpushquery/v1/query``: the outcome once due, else "being processed"."""

    def __init__(
        self, state: SimulatorState, scenarios: ScenarioBook, config: SimulatorConfig
    ) -> None:
        super().__init__(state)
        self._scenarios = scenarios
        self._config = config

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._body(req, resp)
        if body is None:
            return
        try:
            query = validate_query(body)
        except InvalidField as exc:
            send_error(resp, 400, "400.002.02", str(exc))
            return
        if not self._credentials_ok(resp, query.shortcode, query.password, query.timestamp):
            return
        transaction = self._state.transaction(query.checkout_request_id)
        # A checkout id belongs to the shortcode that pushed it.
        if transaction is None or transaction.shortcode != query.shortcode:
            send_error(resp, 500, "500.001.1001", TRANSACTION_MISSING)
            return
        injected = self._scenarios.query_error(transaction.phone, transaction.amount)
        if injected is not None:
            send_reply(resp, injected)
        elif transaction.is_due(self._state.now()):
            code = transaction.outcome.result_code
            resp.media = _query_answer(transaction, str(code), transaction.outcome.result_desc)
        elif self._config.query_pending_style == "4999":
            resp.media = _query_answer(
                transaction, str(STILL_PROCESSING), describe(STILL_PROCESSING)
            )
        else:
            send_error(resp, 500, "500.001.1001", TRANSACTION_PENDING)


def _query_answer(transaction: Transaction, code: str, desc: str) -> dict[str, object]:
    return {
        "ResponseCode": "0",
        "ResponseDescription": QUERY_ACCEPTED,
        "MerchantRequestID": transaction.merchant_request_id,
        "CheckoutRequestID": transaction.checkout_request_id,
        "ResultCode": code,
        "ResultDesc": desc,
    }


def _seconds_text(seconds: float) -> str:
    """``3599.0`` → ``"3599"``; fractions (tests) stay, e.g. ``"0.5"``."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
