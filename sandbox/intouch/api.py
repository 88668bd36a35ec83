"""GU's API under ``/apidist/sec``: direct collection (PUT …/transaction) and check_status.

Both are behind HTTP Digest (the agency's API login); the push also wants the
agent login as ``loginAgent``/``passwordAgent`` query parameters and
check_status the API login again in its body. Refusals are JSON
``{"status": "FAILED", "message": ...}`` (check_status adds its ``code``).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

import falcon

from sandbox.config import SimulatorConfig
from sandbox.intouch.callbacks import CallbackDispatcher
from sandbox.intouch.digest import DigestAuthority
from sandbox.intouch.scenarios import ScenarioBook
from sandbox.intouch.state import Agency, DuplicateOrder, SimulatorState

MAX_ID_LENGTH = 100


def refuse(resp: falcon.Response, status: int, message: str, **extra: object) -> None:
    resp.status = status
    resp.media = {"status": "FAILED", "message": message, **extra}


def json_object(req: falcon.Request) -> dict[str, Any] | None:
    try:
        document = json.loads(req.context.raw_body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def same(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


class GuResource:
    """What both GU resources share: the agency from the path, and its Digest login."""

    def __init__(self, state: SimulatorState, digest: DigestAuthority) -> None:
        self._state = state
        self._digest = digest

    def _authenticated(
        self, req: falcon.Request, resp: falcon.Response, agency_code: str
    ) -> Agency | None:
        agency = self._state.agency(agency_code)

        def password_of(user: str) -> str | None:
            return agency.password_api if agency and user == agency.login_api else None

        user = self._digest.verify(
            req.get_header("Authorization"), req.method, req.root_path + req.path, password_of
        )
        if user is None:
            resp.set_header("WWW-Authenticate", self._digest.challenge())
            refuse(resp, 401, "Unauthorized")
            return None
        return agency


class PushResource(GuResource):
    """``PUT /apidist/sec/touchpayapi/{agency}/transaction``: start a GU collection."""

    def __init__(
        self,
        state: SimulatorState,
        digest: DigestAuthority,
        scenarios: ScenarioBook,
        dispatcher: CallbackDispatcher,
        config: SimulatorConfig,
    ) -> None:
        super().__init__(state, digest)
        self._scenarios = scenarios
        self._dispatcher = dispatcher
        self._config = config

    def on_put(self, req: falcon.Request, resp: falcon.Response, agency: str) -> None:
        found = self._authenticated(req, resp, agency)
        if found is None:
            return
        if not (
            same(req.get_param("loginAgent"), found.login_agent)
            and same(req.get_param("passwordAgent"), found.password_agent)
        ):
            refuse(resp, 401, "invalid loginAgent or passwordAgent")
            return
        body = json_object(req)
        problem = push_problem(body, found)
        if body is None or problem:
            refuse(resp, 400, problem or "the body must be a JSON object")
            return
        amount = int(body["amount"])
        decision = self._scenarios.decide(
            str(body["recipientNumber"]),
            amount,
            found.country_code,
            self._config.callback_delay_s,
            push=True,
        )
        if decision.push_error is not None:
            refuse(resp, decision.push_error, "injected error")
            return
        info = body.get("additionnalInfos") or {}
        try:
            transaction = self._state.create_transaction(
                agency=found,
                flow="gu",
                order_number=str(body["idFromClient"]),
                amount=amount,
                phone=str(body["recipientNumber"]),
                callback_url=str(body["callback"]),
                service_code=str(body["serviceCode"]),
                outcome=decision.outcome,
                customer={k: str(v) for k, v in info.items() if isinstance(v, str | int)},
            )
        except DuplicateOrder:
            refuse(resp, 409, "idFromClient already used")
            return
        self._dispatcher.schedule_transaction(transaction, found)
        resp.media = {
            "idFromClient": transaction.order_number,
            "idFromGU": transaction.gu_transaction_id,
            "amount": amount,
            "fees": 0,
            "serviceCode": transaction.service_code,
            "recipientNumber": transaction.phone,
            "dateTime": int(time.time() * 1000),
            "status": "INITIATED",
            "numTransaction": transaction.gu_transaction_id,
            "payment_url": None,
        }


def push_problem(body: dict[str, Any] | None, agency: Agency) -> str | None:
    """Why GU would refuse this push body, or None."""
    if body is None:
        return None
    order = body.get("idFromClient")
    if not isinstance(order, str) or not order.strip() or len(order) > MAX_ID_LENGTH:
        return "idFromClient must be 1-100 characters"
    amount = body.get("amount")
    if isinstance(amount, str) and amount.isdigit():
        amount = int(amount)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        body_amount = body.get("amount")
        return f"amount must be a whole number of francs >= 1, got {body_amount!r}"
    body["amount"] = amount
    callback = body.get("callback")
    if not isinstance(callback, str) or not callback.startswith(("http://", "https://")):
        return "callback must be an http(s) URL"
    recipient = body.get("recipientNumber")
    if not isinstance(recipient, str) or not recipient.isdigit() or not 8 <= len(recipient) <= 15:
        return "recipientNumber must be 8-15 digits"
    if body.get("serviceCode") not in agency.service_codes:
        return f"serviceCode is not one of the agency's services {list(agency.service_codes)}"
    info = body.get("additionnalInfos")
    if info is not None and not isinstance(info, dict):
        return "additionnalInfos must be an object"
    return None


class CheckStatusResource(GuResource):
    """``POST /apidist/sec/v1/{agency}/check_status``: where a transaction stands."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, agency: str) -> None:
        found = self._authenticated(req, resp, agency)
        if found is None:
            return
        body = json_object(req)
        if body is None:
            refuse(resp, 400, "the body must be a JSON object", code=400)
            return
        if not (
            same(body.get("login_api"), found.login_api)
            and same(body.get("password_api"), found.password_api)
            and same(body.get("partner_id"), found.partner_id)
        ):
            refuse(resp, 401, "invalid partner_id, login_api or password_api", code=401)
            return
        order = body.get("partner_transaction_id")
        transaction = (
            self._state.transaction(order, found.agency_code) if isinstance(order, str) else None
        )
        if transaction is None:
            resp.status = 404
            resp.media = {"code": 404, "status": "NOT_FOUND", "message": "unknown transaction"}
            return
        now = self._state.now()
        status = transaction.status(now)
        resp.media = {
            "code": transaction.check_status_code(now),
            "status": status,
            "message": status.lower(),
            "partner_transaction_id": transaction.order_number,
            "gu_transaction_id": transaction.gu_transaction_id,
            "amount": f"{float(transaction.amount):.1f}",
            "fees": "0.0",
            "service_id": transaction.service_code,
        }
