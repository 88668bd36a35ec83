"""The ``/_sim`` control API: inspect what happened, steer what happens next.

Bad input is answered 400 with falcon's JSON error document (``title``,
``description``), unknown ids 404; nothing here answers 500 on purpose.
"""

from __future__ import annotations

from typing import Final

import falcon

from sandbox.daraja.callbacks import CallbackDispatcher, callback_body
from sandbox.daraja.initiator import InitiatorKeys
from sandbox.daraja.scenarios import ScenarioBook
from sandbox.daraja.state import SimulatorState
from sandbox.daraja.transfer_state import TransferBook, TransferScenarios
from sandbox.daraja.validation import InvalidField, shortcode_field
from sandbox.web import json_object

REQUEST_KINDS: Final = (
    "oauth",
    "stkpush",
    "query",
    "reversal",
    "b2c",
    "transactionstatus",
    "pullregister",
    "pull",
    "other",
)


def _non_empty_string(body: dict[str, object], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise falcon.HTTPBadRequest(title="Invalid field", description=f"{key} must be a string")
    return value


class RequestsResource:
    """``GET /_sim/requests?kind=oauth|stkpush|query|other``: received requests, newest last."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        kind = req.get_param("kind")
        if kind is not None and kind not in REQUEST_KINDS:
            raise falcon.HTTPBadRequest(
                title="Invalid kind", description=f"kind must be one of {list(REQUEST_KINDS)}"
            )
        resp.media = [record.to_json() for record in self._state.requests(kind)]


class CallbacksResource:
    """``GET /_sim/callbacks``: every callback delivery attempt, newest last."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [record.to_json() for record in self._state.deliveries()]


class TransactionsResource:
    """``GET /_sim/transactions`` and ``GET /_sim/transactions/{CheckoutRequestID}``."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self._state.now()
        resp.media = [tx.to_json(now) for tx in self._state.transactions()]

    def on_get_one(
        self, req: falcon.Request, resp: falcon.Response, checkout_request_id: str
    ) -> None:
        transaction = self._state.transaction(checkout_request_id)
        if transaction is None:
            raise falcon.HTTPNotFound(description=f"no transaction {checkout_request_id}")
        resp.media = transaction.to_json(self._state.now())


class RevokeTokensResource:
    """``POST /_sim/tokens/revoke``: every issued token stops working."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"revoked": self._state.revoke_tokens()}


class ShortcodesResource:
    """``POST /_sim/shortcodes`` ``{shortcode, passkey}``: register or replace a shortcode."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        try:
            shortcode = shortcode_field(body, "shortcode")
        except InvalidField:
            raise falcon.HTTPBadRequest(
                title="Invalid field", description="shortcode must be 5-7 digits"
            ) from None
        passkey = _non_empty_string(body, "passkey")
        self._state.add_shortcode(shortcode, passkey)
        resp.status = 201
        resp.media = {"shortcode": shortcode}


class AppsResource:
    """``POST /_sim/apps`` ``{consumer_key, consumer_secret}``: register or replace an app."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        key = _non_empty_string(body, "consumer_key")
        secret = _non_empty_string(body, "consumer_secret")
        if ":" in key:
            # Basic auth splits key from secret at the first colon.
            raise falcon.HTTPBadRequest(
                title="Invalid field", description="consumer_key must not contain ':'"
            )
        self._state.add_app(key, secret)
        resp.status = 201
        resp.media = {"consumer_key": key}


class ResendResource:
    """``POST /_sim/callbacks/{CheckoutRequestID}/resend``: send its callback once more, now."""

    def __init__(self, state: SimulatorState, dispatcher: CallbackDispatcher) -> None:
        self._state = state
        self._dispatcher = dispatcher

    def on_post(self, req: falcon.Request, resp: falcon.Response, checkout_request_id: str) -> None:
        transaction = self._state.transaction(checkout_request_id)
        if transaction is None:
            raise falcon.HTTPNotFound(description=f"no transaction {checkout_request_id}")
        now = self._state.now()
        if not transaction.is_due(now):
            raise falcon.HTTPConflict(description="the outcome is not due yet")
        body = callback_body(transaction)
        self._dispatcher.schedule(now, checkout_request_id, transaction.callback_url, body)
        resp.status = 202
        resp.media = {"scheduled": True, "url": transaction.callback_url, "body": body}


class TransfersResource:
    """``GET /_sim/transfers``: every Reversal and B2C made (the witness), oldest first."""

    def __init__(self, state: SimulatorState, book: TransferBook) -> None:
        self._state = state
        self._book = book

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self._book.now()
        deliveries = self._state.deliveries()
        resp.media = {
            "transfers": [
                transfer.to_json(
                    now,
                    [
                        d.to_json()
                        for d in deliveries
                        if d.checkout_request_id == transfer.originator_conversation_id
                    ],
                )
                for transfer in self._book.all()
            ]
        }


class CertificateResource:
    """``GET /_sim/certificate``: the PEM certificate SecurityCredentials are encrypted for."""

    def __init__(self, keys: InitiatorKeys) -> None:
        self._keys = keys

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/x-pem-file"
        resp.data = self._keys.certificate_pem


class ResetResource:
    """``POST /_sim/reset``: forget everything but the built-ins and the config."""

    def __init__(
        self,
        state: SimulatorState,
        scenarios: ScenarioBook,
        dispatcher: CallbackDispatcher,
        transfers: TransferBook,
        transfer_scenarios: TransferScenarios,
    ) -> None:
        self._state = state
        self._scenarios = scenarios
        self._dispatcher = dispatcher
        self._transfers = transfers
        self._transfer_scenarios = transfer_scenarios

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._dispatcher.clear()
        self._scenarios.clear()
        self._transfer_scenarios.clear()
        self._transfers.reset()
        self._state.reset()
        resp.media = {"reset": True}


class HealthResource:
    """``GET /_sim/health``."""

    def __init__(self, state: SimulatorState, dispatcher: CallbackDispatcher) -> None:
        self._state = state
        self._dispatcher = dispatcher

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "status": "ok",
            "transactions": len(self._state.transactions()),
            "pending_callbacks": self._dispatcher.pending(),
        }
