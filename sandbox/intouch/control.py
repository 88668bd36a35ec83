"""The ``/_sim`` routes: the TouchPay checkout a browser would make, and the controls.

Bad input is answered 400 with falcon's JSON error document (``title``,
``description``), unknown ids 404.
"""

from __future__ import annotations

import json
from typing import Any, Final

import falcon

from sandbox.config import SimulatorConfig
from sandbox.intouch.callbacks import CallbackDispatcher, delivery_for
from sandbox.intouch.scenarios import ScenarioBook, ScenarioError
from sandbox.intouch.state import AGENCY_FIELDS, Agency, DuplicateOrder, SimulatorState

SDK_PARAMETERS: Final = (
    "order_number",
    "agency_code",
    "secure_code",
    "domain_name",
    "url_redirection_success",
    "url_redirection_failed",
    "amount",
    "city",
    "email",
    "clientFirstName",
    "clientLastName",
    "clientPhone",
)
REQUIRED_SDK_PARAMETERS: Final = SDK_PARAMETERS[:7]
NEW_AGENCY_REQUIRED: Final = (
    "agency_code",
    "secure_code",
    "domain_name",
    "login_agent",
    "password_agent",
    "login_api",
    "password_api",
    "partner_id",
    "service_codes",
)
_BOOLEAN_FIELDS: Final = ("callback_json_body", "basic_on_gu_callbacks")


def json_document(req: falcon.Request) -> Any:
    raw = req.context.raw_body
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise falcon.HTTPBadRequest(
            title="invalid JSON", description="the body is not JSON"
        ) from None


def bad(reason: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="refused", description=reason)


class CheckoutResource:
    """``POST /_sim/touchpay/checkout``: what TouchPay's SDK sends when the customer pays."""

    def __init__(
        self,
        state: SimulatorState,
        scenarios: ScenarioBook,
        dispatcher: CallbackDispatcher,
        config: SimulatorConfig,
    ) -> None:
        self._state = state
        self._scenarios = scenarios
        self._dispatcher = dispatcher
        self._config = config

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = json_document(req)
        if not isinstance(params, dict):
            raise bad("send the SDK parameters as a JSON object")
        missing = [name for name in REQUIRED_SDK_PARAMETERS if params.get(name) in (None, "")]
        if missing:
            raise bad(f"missing required parameters: {', '.join(missing)}")
        unknown = sorted(set(params) - set(SDK_PARAMETERS))
        if unknown:
            raise bad(f"unknown parameters: {', '.join(unknown)}")
        agency = self._state.agency(str(params["agency_code"]))
        if agency is None:
            raise bad("unknown agency_code")
        if params["secure_code"] != agency.secure_code:
            raise bad("the secure code does not belong to this agency")
        if str(params["domain_name"]).strip().lower() != agency.domain_name.lower():
            raise bad("domain_name does not match the agency's registered domain")
        amount = _whole_amount(params["amount"])
        phone = str(params.get("clientPhone") or "")
        decision = self._scenarios.decide(
            phone, amount, agency.country_code, self._config.callback_delay_s, push=False
        )
        customer = {
            name: str(params[name])
            for name in ("city", "email", "clientFirstName", "clientLastName")
            if params.get(name)
        }
        try:
            transaction = self._state.create_transaction(
                agency=agency,
                flow="touchpay",
                order_number=str(params["order_number"]),
                amount=amount,
                phone=phone,
                callback_url=agency.callback_url,
                service_code="",
                outcome=decision.outcome,
                customer=customer,
            )
        except DuplicateOrder:
            raise falcon.HTTPConflict(
                title="duplicate", description="this agency already has that order_number"
            ) from None
        self._dispatcher.schedule_transaction(transaction, agency)
        status = decision.outcome.status
        resp.media = {
            "order_number": transaction.order_number,
            "payment_token": transaction.payment_token,
            "status": "PENDING",
            "outcome": status,
            "outcome_due_in_s": decision.outcome.callback_delay_s,
            # Where TouchPay's page sends the browser once the customer is done.
            "redirect_url": params["url_redirection_failed"]
            if status == "failed"
            else params["url_redirection_success"],
        }


def _whole_amount(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad("amount must be a whole number of francs >= 1")
    return value


SDK_SCRIPT: Final = """// A stand-in for TouchPay's SDK: the same function, posting to the sandbox.
function sendPaymentInfos(order_number, agency_code, secure_code, domain_name,
    url_redirection_success, url_redirection_failed, amount, city, email,
    clientFirstName, clientLastName, clientPhone) {
  var names = ["order_number", "agency_code", "secure_code", "domain_name",
    "url_redirection_success", "url_redirection_failed", "amount", "city", "email",
    "clientFirstName", "clientLastName", "clientPhone"];
  var values = Array.prototype.slice.call(arguments), body = {};
  names.forEach(function (name, i) { if (values[i] !== undefined) body[name] = values[i]; });
  var here = document.currentScript ? document.currentScript.src : "";
  return fetch(here.replace(/sdk\\.js.*$/, "checkout"), {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
    .then(function (r) { return r.json(); })
    .then(function (answer) { if (answer.redirect_url) window.location = answer.redirect_url;
      return answer; });
}
"""


class SdkScriptResource:
    """``GET /_sim/touchpay/sdk.js``: a ``sendPaymentInfos`` that talks to the simulator."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/javascript"
        resp.text = SDK_SCRIPT


class AgenciesResource:
    """``GET`` lists agencies; ``POST`` adds one (all fields) or changes one (some fields)."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"agencies": [a.to_json() for a in self._state.agencies()]}

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, agency_code: str) -> None:
        agency = self._state.agency(agency_code)
        if agency is None:
            raise falcon.HTTPNotFound(description="no such agency")
        resp.media = agency.to_json()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = agency_changes(json_document(req))
        exists = self._state.agency(changes["agency_code"]) is not None
        if not exists:
            missing = [name for name in NEW_AGENCY_REQUIRED if name not in changes]
            if missing:
                raise bad(f"a new agency needs {', '.join(missing)}")
        agency: Agency = self._state.put_agency(changes)
        resp.status = falcon.HTTP_200 if exists else falcon.HTTP_201
        resp.media = agency.to_json()


def agency_changes(document: object) -> dict[str, Any]:
    """Validated agency fields from a control document."""
    if not isinstance(document, dict):
        raise bad("an agency must be a JSON object")
    unknown = sorted(set(document) - AGENCY_FIELDS)
    if unknown:
        raise bad(f"unknown agency fields: {', '.join(unknown)}")
    if not isinstance(document.get("agency_code"), str) or not document["agency_code"]:
        raise bad("agency_code is required")
    changes: dict[str, Any] = {}
    for name, value in document.items():
        if name == "service_codes":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise bad("service_codes must be a list of strings")
            changes[name] = tuple(value)
        elif name in _BOOLEAN_FIELDS:
            if not isinstance(value, bool):
                raise bad(f"{name} must be true or false")
            changes[name] = value
        elif name == "callback_url":
            if value is not None and (
                not isinstance(value, str) or not value.startswith(("http://", "https://"))
            ):
                raise bad("callback_url must be an http(s) URL or null")
            changes[name] = value
        elif not isinstance(value, str):
            raise bad(f"{name} must be a string")
        else:
            changes[name] = value
    return changes


class ScenariosResource:
    def __init__(self, scenarios: ScenarioBook) -> None:
        self._scenarios = scenarios

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"scenarios": self._scenarios.snapshot()}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            scenario = self._scenarios.add(json_document(req))
        except ScenarioError as exc:
            raise bad(str(exc)) from None
        resp.status = falcon.HTTP_201
        resp.media = scenario.to_json()

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._scenarios.clear()
        resp.media = {"scenarios": []}


class RequestsResource:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        kind = req.get_param("kind")
        resp.media = {"requests": [r.to_json() for r in self._state.requests(kind)]}


class DeliveriesResource:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        order = req.get_param("order_number")
        resp.media = {
            "deliveries": [
                d.to_json()
                for d in self._state.deliveries()
                if order is None or d.order_number == order
            ]
        }


class TransactionsResource:
    def __init__(self, state: SimulatorState, dispatcher: CallbackDispatcher) -> None:
        self._state = state
        self._dispatcher = dispatcher

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self._state.now()
        resp.media = {"transactions": [t.to_json(now) for t in self._state.transactions()]}

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, order_number: str) -> None:
        transaction = self._state.transaction(order_number)
        if transaction is None:
            raise falcon.HTTPNotFound(description="no such order number")
        resp.media = transaction.to_json(self._state.now())

    def on_post_resend(self, req: falcon.Request, resp: falcon.Response, order_number: str) -> None:
        """Send the transaction's callback again, now (as InTouch's back office can)."""
        transaction = self._state.transaction(order_number)
        if transaction is None:
            raise falcon.HTTPNotFound(description="no such order number")
        agency = self._state.agency(transaction.agency_code)
        now = self._state.now()
        if not transaction.is_due(now) or agency is None:
            raise falcon.HTTPConflict(title="not due", description="the outcome is not due yet")
        delivery = delivery_for(transaction, agency, now)
        if delivery is None:
            raise falcon.HTTPConflict(title="nothing to send", description="no callback for it")
        self._dispatcher.schedule(now, delivery)
        resp.status = falcon.HTTP_202
        resp.media = {"scheduled": True, "order_number": order_number, "url": delivery.url}


class ResetResource:
    def __init__(
        self, state: SimulatorState, scenarios: ScenarioBook, dispatcher: CallbackDispatcher
    ) -> None:
        self._state = state
        self._scenarios = scenarios
        self._dispatcher = dispatcher

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._dispatcher.clear()
        self._scenarios.clear()
        self._state.reset()
        resp.media = {"reset": True}


class HealthResource:
    def __init__(self, state: SimulatorState, dispatcher: CallbackDispatcher) -> None:
        self._state = state
        self._dispatcher = dispatcher

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "status": "ok",
            "agencies": len(self._state.agencies()),
            "transactions": len(self._state.transactions()),
            "pending_callbacks": self._dispatcher.pending(),
            "callback_thread_alive": self._dispatcher.is_alive(),
        }
