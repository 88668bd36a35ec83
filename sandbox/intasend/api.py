"""IntaSend's own endpoints under ``/api/v1``: STK push (and the older collection), status.

Errors use IntaSend's two shapes: ``{"detail": "..."}`` for authentication and
lookups, ``{"type": "client_error", "errors": [{code, detail, attr}]}`` for
validation. Bodies are read by the app's middleware into ``req.context.raw_body``.
"""

from __future__ import annotations

import abc
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import falcon

from sandbox.config import SimulatorConfig
from sandbox.intasend import invoices
from sandbox.intasend.accounts import Account
from sandbox.intasend.invoices import Customer, Invoice
from sandbox.intasend.scenarios import ErrorReply, Outcome, ScenarioBook, decimal_amount
from sandbox.intasend.settings import IntaSendSimSettings
from sandbox.intasend.state import SimulatorState
from sandbox.intasend.webhooks import WebhookDispatcher

PUBLIC_KEY_HEADER: Final = "INTASEND_PUBLIC_API_KEY"
NOT_PROVIDED: Final = "Authentication credentials were not provided."
INVALID_CREDENTIALS: Final = "Invalid authentication credentials"
MAX_AMOUNT: Final = Decimal(150_000)
MIN_AMOUNT: Final = Decimal(1)
_PHONE: Final = re.compile(r"254[17][0-9]{8}")
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

Sleep = Callable[[float], None]
FieldError = tuple[str, str, str | None]  # code, detail, attr


def send_detail(resp: falcon.Response, status: int, detail: str) -> None:
    resp.status = status
    resp.media = {"detail": detail}


def send_errors(resp: falcon.Response, errors: list[FieldError], status: int = 400) -> None:
    resp.status = status
    resp.media = {
        "type": "client_error" if status < 500 else "server_error",
        "errors": [{"code": c, "detail": d, "attr": a} for c, d, a in errors],
    }


def send_injected(resp: falcon.Response, reply: ErrorReply) -> None:
    if reply.status == 429:
        resp.set_header("Retry-After", "1")
    if reply.body == "html":
        resp.status = reply.status
        resp.content_type = "text/html"
        resp.text = f"<h1>Server Error ({reply.status})</h1>"
    elif reply.body == "errors":
        send_errors(resp, [("error", reply.detail, None)], reply.status)
    else:
        send_detail(resp, reply.status, reply.detail)


def json_body(req: falcon.Request) -> dict[str, object] | None:
    try:
        body = json.loads(req.context.raw_body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def bearer(req: falcon.Request) -> str | None:
    scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True)
class PushRequest:
    amount: Decimal
    currency: str
    phone: str
    api_ref: str | None
    narrative: str | None
    name: str | None
    email: str | None
    wallet_id: str | None


def _optional_text(
    body: Mapping[str, object], key: str, limit: int, errors: list[FieldError]
) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        errors.append(("invalid", f"Ensure this field is text of at most {limit} characters.", key))
        return None
    return value


def validate_push(body: Mapping[str, object], account: Account) -> PushRequest | list[FieldError]:
    """The push's fields, or the validation errors IntaSend would list."""
    errors: list[FieldError] = []
    amount = decimal_amount(body.get("amount"))
    if body.get("amount") is None:
        errors.append(("required", "This field is required.", "amount"))
    elif amount is None:
        errors.append(("invalid", "A valid number is required.", "amount"))
    elif not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        errors.append(("invalid", "Amount must be between KES 1 and KES 150,000.", "amount"))
    elif amount != amount.quantize(invoices.CENTS):
        errors.append(("invalid", "Ensure that there are no more than 2 decimal places.", "amount"))
    currency = body.get("currency", "KES")
    if currency != "KES":
        errors.append(("invalid", f'"{str(currency)[:10]}" is not a valid choice.', "currency"))
    method = body.get("method", "M-PESA")
    if method != "M-PESA":
        errors.append(("invalid", f'"{str(method)[:10]}" is not a valid choice.', "method"))
    phone = body.get("phone_number")
    if phone is None or phone == "":
        errors.append(("required", "This field is required.", "phone_number"))
    elif not isinstance(phone, (str, int)) or not _PHONE.fullmatch(str(phone)):
        errors.append(("invalid", "Enter a valid phone number (2547XXXXXXXX).", "phone_number"))
    api_ref = _optional_text(body, "api_ref", 100, errors)
    narrative = _optional_text(body, "narrative", 255, errors)
    name = _optional_text(body, "name", 100, errors)
    email = _optional_text(body, "email", 254, errors)
    if email is not None and not _EMAIL.fullmatch(email):
        errors.append(("invalid", "Enter a valid email address.", "email"))
    wallet_id = _optional_text(body, "wallet_id", 64, errors)
    if wallet_id is not None and wallet_id not in account.wallet_ids:
        errors.append(("invalid", "Wallet not found.", "wallet_id"))
    if errors or amount is None:
        return errors
    return PushRequest(amount, "KES", str(phone), api_ref, narrative, name, email, wallet_id)


class _PushResource(abc.ABC):
    """Shared by ``payment/mpesa-stk-push/`` and the older ``payment/collection/``."""

    def __init__(
        self,
        state: SimulatorState,
        scenarios: ScenarioBook,
        dispatcher: WebhookDispatcher,
        config: SimulatorConfig,
        settings: IntaSendSimSettings,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._state = state
        self._scenarios = scenarios
        self._dispatcher = dispatcher
        self._config = config
        self._settings = settings
        self._sleep = sleep

    @abc.abstractmethod
    def _authenticate(self, req: falcon.Request, body: Mapping[str, object]) -> Account | str:
        """The account a push speaks for, or the 401 detail (each path authenticates its way)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_body(req)
        if body is None:
            send_errors(resp, [("parse_error", "JSON parse error.", None)])
            return
        account = self._authenticate(req, body)
        if isinstance(account, str):
            send_detail(resp, 401, account)
            return
        push = validate_push(body, account)
        if isinstance(push, list):
            send_errors(resp, push)
            return
        decision = self._scenarios.decide(push.phone, push.amount)
        if decision.error is not None:
            self._sleep(decision.push_delay_s)
            send_injected(resp, decision.error)
            return
        invoice = self._create(account, push, decision.outcome, req)
        for due_at, state in invoice.webhook_times(self._gap_s(decision.outcome)):
            self._dispatcher.schedule(due_at, invoice.invoice_id, state)
        # The prompt is already out when a slow answer reaches the client.
        self._sleep(decision.push_delay_s)
        resp.media = invoice.answer(invoice.state_at(self._state.now()))

    def _delay_s(self, outcome: Outcome) -> float:
        return self._config.callback_delay_s if outcome.delay_s is None else outcome.delay_s

    def _gap_s(self, outcome: Outcome) -> float:
        return max(self._delay_s(outcome) / 2, 0.05)

    def _create(
        self, account: Account, push: PushRequest, outcome: Outcome, req: falcon.Request
    ) -> Invoice:
        now, delay = self._state.now(), self._delay_s(outcome)
        first, _, last = (push.name or "").partition(" ")
        customer = Customer(
            invoices.new_meta_id()[:8].upper(), push.phone, push.email, first or None, last or None
        )
        charges = invoices.charges_for(push.amount, self._settings.fee_percent)

        def make(invoice_id: str) -> Invoice:
            return Invoice(
                invoice_id=invoice_id,
                public_key=account.publishable_key,
                customer=customer,
                value=push.amount,
                charges=charges,
                currency=push.currency,
                api_ref=push.api_ref,
                narrative=push.narrative,
                wallet_id=push.wallet_id,
                host=f"{req.scheme}://{req.netloc}",
                outcome=outcome,
                created_at=now,
                processing_at=now + delay / 2,
                final_at=None if outcome.kind == "pending" else now + delay,
                created_wall=self._state.wall_at(now),
                receipt=invoices.mpesa_reference() if outcome.kind == "complete" else None,
                meta_id=invoices.new_meta_id(),
            )

        return self._state.add_invoice(make, invoices.invoice_id)


class StkPushResource(_PushResource):
    """``POST /api/v1/payment/mpesa-stk-push/``: Bearer secret + public key header."""

    def _authenticate(self, req: falcon.Request, body: Mapping[str, object]) -> Account | str:
        secret = bearer(req)
        public_key = req.get_header(PUBLIC_KEY_HEADER)
        if secret is None or (public_key is None and self._settings.strict_public_key):
            return NOT_PROVIDED
        account = self._state.account_by_secret(secret)
        if account is None or public_key not in (None, account.publishable_key):
            return INVALID_CREDENTIALS
        return account


class CollectionResource(_PushResource):
    """``POST /api/v1/payment/collection/`` (older docs): ``public_key`` in the body."""

    def _authenticate(self, req: falcon.Request, body: Mapping[str, object]) -> Account | str:
        return account_by_public_key(self._state, req, body)


def account_by_public_key(
    state: SimulatorState, req: falcon.Request, body: Mapping[str, object]
) -> Account | str:
    """The account of the body's ``public_key`` (or the header's); a Bearer sent must match."""
    public_key = body.get("public_key") or req.get_header(PUBLIC_KEY_HEADER)
    if not isinstance(public_key, str) or not public_key:
        return NOT_PROVIDED
    account = state.account(public_key)
    secret = bearer(req)
    if account is None or secret not in (None, account.secret_key):
        return INVALID_CREDENTIALS
    return account


class StatusResource:
    """``POST /api/v1/payment/status/`` ``{invoice_id, public_key}``: the invoice as of now."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_body(req)
        if body is None:
            send_errors(resp, [("parse_error", "JSON parse error.", None)])
            return
        account = account_by_public_key(self._state, req, body)
        if isinstance(account, str):
            send_detail(resp, 401, account)
            return
        invoice_id = body.get("invoice_id")
        if not isinstance(invoice_id, str) or not invoice_id:
            send_errors(resp, [("required", "This field is required.", "invoice_id")])
            return
        invoice = self._state.invoice(invoice_id)
        if invoice is None or invoice.public_key != account.publishable_key:
            send_detail(resp, 404, "Not found.")
            return
        resp.media = invoice.status_answer(invoice.state_at(self._state.now()))
